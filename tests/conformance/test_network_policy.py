"""G5: NetworkPolicy (networking.k8s.io/v1) isolates exactly as Kubernetes
specifies; a denied connection times out (drop, never reject).

Every expectation below is written from the Kubernetes documentation
(concepts/services-networking/network-policies and the API reference), not
from podnet's compiler: `expect(src, dst, port, protocol)` says whether the
documentation allows a connection from pod src to pod dst. A pod reaching
itself never leaves its namespace, so it is always allowed."""
import socket

import pytest
from conformance.netpol_model import PODS, PORTS, PROTOCOLS


def ns(pod):
    return pod.split('/')[0]


def name(pod):
    return pod.split('/')[1]


def sel(**labels):
    return {'matchLabels': labels}


def policy(namespace, policy_name, spec):
    return {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
            'metadata': {'name': policy_name, 'namespace': namespace}, 'spec': spec}


def ingress_to(target, allowed_from, ports=None):
    """expect(): ingress to `target` only from sources allowed_from(src) accepts."""
    def expect(src, dst, port, protocol):
        if dst != target:
            return True
        return allowed_from(src) and (ports is None or (protocol, port) in ports)
    return expect


CASES = {
    # "Default deny all ingress traffic" (documentation): every pod of x isolated.
    'default-deny-ingress': (
        [policy('x', 'deny-ingress', {'podSelector': {}, 'policyTypes': ['Ingress']})],
        lambda s, d, port, proto: ns(d) != 'x'),
    # "Default deny all egress traffic".
    'default-deny-egress': (
        [policy('x', 'deny-egress', {'podSelector': {}, 'policyTypes': ['Egress']})],
        lambda s, d, port, proto: ns(s) != 'x'),
    # "Default deny all ingress and all egress traffic".
    'deny-all': (
        [policy('x', 'deny-all', {'podSelector': {}, 'policyTypes': ['Ingress', 'Egress']})],
        lambda s, d, port, proto: ns(s) != 'x' and ns(d) != 'x'),
    # "Allow all ingress traffic": an empty rule selects every source.
    'allow-all-ingress': (
        [policy('x', 'deny-ingress', {'podSelector': {}, 'policyTypes': ['Ingress']}),
         policy('x', 'allow-all', {'podSelector': {}, 'ingress': [{}]})],
        lambda s, d, port, proto: True),
    # podSelector alone: pods of the policy's own namespace.
    'pod-selector': (
        [policy('x', 'a-from-b', {'podSelector': sel(pod='a'),
                                  'ingress': [{'from': [{'podSelector': sel(pod='b')}]}]})],
        ingress_to('x/a', lambda s: s == 'x/b')),
    # namespaceSelector alone: every pod of the selected namespaces.
    'namespace-selector': (
        [policy('x', 'a-from-y', {'podSelector': sel(pod='a'),
                                  'ingress': [{'from': [{'namespaceSelector': sel(ns='y')}]}]})],
        ingress_to('x/a', lambda s: ns(s) == 'y')),
    # Both in one peer: pods matching both (AND).
    'pod-and-namespace': (
        [policy('x', 'a-from-y-b', {'podSelector': sel(pod='a'), 'ingress': [{'from': [
            {'namespaceSelector': sel(ns='y'), 'podSelector': sel(pod='b')}]}]})],
        ingress_to('x/a', lambda s: s == 'y/b')),
    # Two peers: either one (OR).
    'pod-or-namespace': (
        [policy('x', 'a-from-y-or-b', {'podSelector': sel(pod='a'), 'ingress': [{'from': [
            {'namespaceSelector': sel(ns='y')}, {'podSelector': sel(pod='b')}]}]})],
        ingress_to('x/a', lambda s: ns(s) == 'y' or s == 'x/b')),
    # matchExpressions on both selectors.
    'match-expressions': (
        [policy('x', 'ab-from-not-x', {
            'podSelector': {'matchExpressions': [{'key': 'pod', 'operator': 'In', 'values': ['a', 'b']}]},
            'ingress': [{'from': [{'namespaceSelector': {'matchExpressions': [
                {'key': 'ns', 'operator': 'NotIn', 'values': ['x']}]}}]}]})],
        lambda s, d, port, proto: d not in ('x/a', 'x/b') or ns(s) != 'x' or s == d),
    # A named port is resolved on the target pod's container ports.
    'named-port': (
        [policy('x', 'a-serve-80-tcp', {'podSelector': sel(pod='a'),
                                        'ingress': [{'ports': [{'port': 'serve-80-tcp'}]}]})],
        ingress_to('x/a', lambda s: True, ports={('TCP', 80)})),
    # endPort: a range of numeric ports.
    'end-port': (
        [policy('x', 'a-tcp-80-81', {'podSelector': sel(pod='a'), 'ingress': [{'ports': [
            {'protocol': 'TCP', 'port': 80, 'endPort': 81}]}]})],
        ingress_to('x/a', lambda s: True, ports={('TCP', 80), ('TCP', 81)})),
    # UDP only.
    'udp-only': (
        [policy('x', 'a-udp-81', {'podSelector': sel(pod='a'), 'ingress': [{'ports': [
            {'protocol': 'UDP', 'port': 81}]}]})],
        ingress_to('x/a', lambda s: True, ports={('UDP', 81)})),
    # Egress to specific pods only.
    'egress-to-pods': (
        [policy('x', 'a-to-b', {'podSelector': sel(pod='a'), 'policyTypes': ['Egress'],
                                'egress': [{'to': [{'podSelector': sel(pod='b')}]}]})],
        lambda s, d, port, proto: s != 'x/a' or d in ('x/b', 'x/a')),
    # Several policies selecting one pod add up.
    'policies-add-up': (
        [policy('x', 'a-from-b', {'podSelector': sel(pod='a'),
                                  'ingress': [{'from': [{'podSelector': sel(pod='b')}]}]}),
         policy('x', 'a-from-z', {'podSelector': sel(pod='a'),
                                  'ingress': [{'from': [{'namespaceSelector': sel(ns='z')}]}]})],
        ingress_to('x/a', lambda s: s == 'x/b' or ns(s) == 'z')),
}


def verdicts(model, report, expect):
    """Probe the whole model, draw each truth table in the report (why each
    denied cell is denied, as the policy model says), and return every cell
    that differs from what the documentation allows."""
    wrong, tables = [], model.probe()
    assert set(tables) == {(p, q) for p in PORTS for q in PROTOCOLS}, sorted(tables)
    for (port, protocol), table in sorted(tables.items()):
        want = {s: {d: s == d or expect(s, d, port, protocol) for d in PODS} for s in PODS}
        report.grid('%s/%d' % (protocol, port), PODS, table['allowed'], table.get('why'), want)
        for src in PODS:
            for dst in PODS:
                if table['allowed'][src][dst] != want[src][dst]:
                    wrong.append('%s/%d %s -> %s: expected %s, got %s' % (
                        protocol, port, src, dst, *(('allowed' if v else 'denied')
                                                    for v in (want[src][dst], table['allowed'][src][dst]))))
    return wrong


def test_without_policies_every_pair_connects(model, report):
    assert verdicts(model, report, lambda *a: True) == []


@pytest.mark.parametrize('case', sorted(CASES))
def test_policy_case(model, report, case):
    policies, expect = CASES[case]
    model.apply(policies)
    assert verdicts(model, report, expect) == []


def test_ip_block_with_except(model, report):
    """ipBlock allows the cluster CIDR except one pod's address (its /32)."""
    excluded = model.ip('y/b')
    model.apply([policy('x', 'a-from-block', {'podSelector': sel(pod='a'), 'ingress': [{'from': [
        {'ipBlock': {'cidr': '10.42.0.0/16', 'except': [excluded + '/32']}}]}]})])
    assert verdicts(model, report, ingress_to('x/a', lambda s: s != 'y/b')) == []


def test_updating_a_policy_changes_what_it_allows(model, report):
    rule = lambda source: {'podSelector': sel(pod='a'),  # noqa: E731
                           'ingress': [{'from': [{'podSelector': sel(pod=source)}]}]}
    model.apply([policy('x', 'a-from', rule('b'))])
    model.apply([policy('x', 'a-from', rule('c'))])
    assert verdicts(model, report, ingress_to('x/a', lambda s: s == 'x/c')) == []


def test_removing_policies_restores_traffic(model, report):
    model.apply([policy('x', 'deny-all', {'podSelector': {}, 'policyTypes': ['Ingress', 'Egress']})])
    model.apply([])
    assert verdicts(model, report, lambda *a: True) == []


def test_denied_connections_time_out_rather_than_being_refused(model, nodes):
    """Drop, never reject: a denied TCP connect gets no RST, so it times out."""
    model.apply([policy('x', 'deny-ingress', {'podSelector': {}, 'policyTypes': ['Ingress']})])
    host, netns = sandbox_of(nodes, model.ip('y/a'))
    answer = host.run('ip netns exec %s curl -s -m 2 http://%s:80/', netns, model.ip('x/a'))
    assert answer.rc == 28, (answer.rc, answer.stderr)  # curl: operation timed out


# One datagram from a fixed source port, so that a second send is the same
# flow (5-tuple) as the first.
SEND_UDP = (
    'import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
    's.bind(("", 40999)); s.settimeout(1); s.sendto(b"hostname\\n", (sys.argv[1], 80)); '
    'print(s.recv(100).decode().strip())')


def test_a_flow_allowed_before_a_policy_change_is_judged_anew(model, nodes):
    """A case's verdicts hold for new flows, not for the previous case's:
    the policy table lets tracked flows through, and a UDP flow stays
    tracked 30 s after its last datagram."""
    model.apply([])
    host, netns = sandbox_of(nodes, model.ip('x/b'))
    send = lambda: host.run('ip netns exec %s python3 -c %s %s',  # noqa: E731
                            netns, SEND_UDP, model.ip('z/c'))
    first = send()
    assert first.rc == 0 and first.stdout.strip(), first.stderr
    model.apply([policy('x', 'deny-all', {'podSelector': {}, 'policyTypes': ['Ingress', 'Egress']})])
    again = send()
    assert again.rc != 0 and 'timed out' in again.stderr, (again.stdout, again.stderr)


def sandbox_of(nodes, address):
    """(node host, sandbox netns) of the pod holding address."""
    for host in nodes.values():
        for netns in host.check_output('ip netns list').split():
            if netns.startswith('cni-') and ' %s/' % address in host.run(
                    'ip -n %s -4 -o addr show dev eth0', netns).stdout:
                return host, netns
    raise AssertionError('no pod holds %s' % address)


def test_sctp(model):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as exc:
        pytest.skip('this kernel has no SCTP sockets (%s): SCTP policies cannot be probed' % exc)
    pytest.skip('the netpol model serves no SCTP ports')
