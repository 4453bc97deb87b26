"""NetworkPolicy semantics and their compilation to nftables.

The model is the upstream netpol e2e one: namespaces x, y, z labelled ns=<name>,
pods a, b, c labelled pod=<name>, each serving 80 and 81 over TCP, UDP and
SCTP under the names serve-<port>-<protocol>. Pods alternate between two
nodes, so pairs are both bridged on one node and routed between nodes.

Three layers: selects(); allowed() against matrices derived by hand from the
Kubernetes documentation and the e2e cases; compile_node() run through a
small nft interpreter and held against allowed() for every pair, port and
protocol. Structural checks follow.
"""
import ipaddress
import json
import random

import pytest
from ansible.module_utils.podnet.policy import netpol_nft
from ansible.module_utils.podnet.policy.netpol import (
    Cluster, Requirement, Selector, allowed, parse_policy, selects)
from ansible.module_utils.podnet.policy.netpol_nft import BASE_CHAIN, FAMILY, TABLE, compile_node

NAMESPACES = {n: {'ns': n, 'kubernetes.io/metadata.name': n} for n in 'xyz'}
NODE_IPS = {'node1': ['10.42.1.1', '192.168.50.11'], 'node2': ['10.42.2.1', '192.168.50.12']}
EXTERNAL = '192.0.2.7'
PROBES = [(80, 'TCP'), (81, 'TCP'), (80, 'UDP'), (81, 'UDP'), (80, 'SCTP'), (81, 'SCTP'),
          (None, 'ICMP')]


def make_pod(namespace, name, index):
    node = 'node%d' % (index % 2 + 1)
    return {'namespace': namespace, 'name': name, 'labels': {'pod': name}, 'node': node,
            'ip': '10.42.%d.%d' % (index % 2 + 1, 10 + index), 'veth': 'veth%08x' % (0xa0 + index),
            'ports': [{'name': 'serve-%d-%s' % (port, proto.lower()), 'containerPort': port,
                       'protocol': proto} for port in (80, 81) for proto in ('TCP', 'UDP', 'SCTP')]}


PODS = {'%s/%s' % (ns, p): make_pod(ns, p, i)
        for i, (ns, p) in enumerate((ns, p) for ns in 'xyz' for p in 'abc')}
CLUSTER = Cluster(list(PODS.values()), NAMESPACES, NODE_IPS)


def policy(key, spec):
    namespace, name = key.split('/')
    return parse_policy({'metadata': {'namespace': namespace, 'name': name}, 'spec': spec})


def labels(**kv):
    return {'matchLabels': kv}


ALL = {}
DENY_INGRESS_X = policy('x/deny-ingress', {'podSelector': ALL})
DENY_EGRESS_X = policy('x/deny-egress', {'podSelector': ALL, 'policyTypes': ['Egress']})
DENY_ALL_X = policy('x/deny-all', {'podSelector': ALL, 'policyTypes': ['Ingress', 'Egress']})


def to_a(*rules, key='x/allow'):
    return policy(key, {'podSelector': labels(pod='a'), 'ingress': list(rules)})


def from_a(*rules, key='x/allow-egress'):
    return policy(key, {'podSelector': labels(pod='a'), 'policyTypes': ['Egress'],
                        'egress': list(rules)})


# -- expectations ------------------------------------------------------------------
def _covers(pattern, key):
    namespace, _, name = pattern.partition('/')
    pod_ns, pod_name = key.split('/')
    return namespace in ('*', pod_ns) and name in ('', '*', pod_name)


class Reachability:
    """Expected truth table over the model's pods, like the e2e Reachability:
    start from a default, then set what patterns (x/a, x/*, */a, *) cover."""

    def __init__(self, default=True):
        self.table = {(s, d): default for s in PODS for d in PODS}

    def expect(self, src, dst, value):
        for s, d in self.table:
            if _covers(src, s) and _covers(dst, d):
                self.table[s, d] = value
        return self

    def loopback(self):
        for key in PODS:
            self.table[key, key] = True
        return self


def mismatches(expected, observe):
    return sorted('%s -> %s: expected %s' % (s, d, 'allowed' if v else 'denied')
                  for (s, d), v in expected.items() if observe(s, d) != v)


# (name, policies, probe, expected) -- probe is (port, protocol)
CASES = [
    ('no policies', [], (80, 'TCP'), Reachability()),
    ('default deny ingress', [DENY_INGRESS_X], (80, 'TCP'),
     Reachability().expect('*', 'x/*', False).loopback()),
    ('default deny egress', [DENY_EGRESS_X], (80, 'TCP'),
     Reachability().expect('x/*', '*', False).loopback()),
    ('deny all', [DENY_ALL_X], (81, 'UDP'),
     Reachability().expect('x/*', '*', False).expect('*', 'x/*', False).loopback()),
    ('allow all ingress beside a default deny', [DENY_INGRESS_X, policy(
        'x/allow-all', {'podSelector': ALL, 'ingress': [{}]})], (80, 'TCP'), Reachability()),
    ('allow all egress beside a default deny', [DENY_EGRESS_X, policy(
        'x/allow-all', {'podSelector': ALL, 'policyTypes': ['Egress'], 'egress': [{}]})],
     (80, 'SCTP'), Reachability()),
    ('pod selector: same namespace only', [to_a({'from': [{'podSelector': labels(pod='b')}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True).loopback()),
    ('namespace selector', [to_a({'from': [{'namespaceSelector': labels(ns='y')}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True).loopback()),
    ('pod AND namespace in one peer', [to_a({'from': [
        {'namespaceSelector': labels(ns='y'), 'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/b', 'x/a', True).loopback()),
    ('pod OR namespace in two peers', [to_a({'from': [
        {'namespaceSelector': labels(ns='y')}, {'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True)
     .expect('x/b', 'x/a', True).loopback()),
    ('any pod of any namespace', [to_a({'from': [
        {'namespaceSelector': ALL, 'podSelector': labels(pod='c')}]})], (81, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('*/c', 'x/a', True).loopback()),
    ('namespace selector NotIn', [to_a({'from': [{'namespaceSelector': {'matchExpressions': [
        {'key': 'ns', 'operator': 'NotIn', 'values': ['x']}]}}]})], (80, 'TCP'),
     Reachability().expect('x/*', 'x/a', False).loopback()),
    ('pod selector In', [to_a({'from': [{'podSelector': {'matchExpressions': [
        {'key': 'pod', 'operator': 'In', 'values': ['b', 'c']}]}}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True)
     .expect('x/c', 'x/a', True).loopback()),
    ('pod selector Exists/DoesNotExist', [policy('x/p', {
        'podSelector': {'matchExpressions': [{'key': 'pod', 'operator': 'Exists'}]},
        'ingress': [{'from': [{'namespaceSelector': {'matchExpressions': [
            {'key': 'team', 'operator': 'DoesNotExist'}]}, 'podSelector': labels(pod='a')}]}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/*', False).expect('*/a', 'x/*', True).loopback()),
    ('ports: only 80/TCP allowed, probe 81', [to_a({'ports': [{'port': 80}]})], (81, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('ports: only 80/TCP allowed, probe 80', [to_a({'ports': [{'port': 80}]})], (80, 'TCP'),
     Reachability()),
    ('UDP only: TCP refused', [to_a({'ports': [{'protocol': 'UDP', 'port': 80}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('SCTP is not TCP', [to_a({'ports': [{'protocol': 'SCTP', 'port': 80}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('SCTP is not TCP, probe SCTP', [to_a({'ports': [{'protocol': 'SCTP', 'port': 80}]})],
     (80, 'SCTP'), Reachability()),
    ('any port on one protocol', [to_a({'ports': [{'protocol': 'UDP'}]})], (81, 'UDP'),
     Reachability()),
    ('ingress named port', [to_a({'ports': [{'port': 'serve-81-tcp'}]})], (81, 'TCP'),
     Reachability()),
    ('ingress named port, other port', [to_a({'ports': [{'port': 'serve-81-tcp'}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('named port with the wrong protocol', [to_a({'ports': [{'port': 'serve-81-tcp',
                                                             'protocol': 'UDP'}]})],
     (81, 'UDP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('ingress named port from a namespace', [to_a({
        'from': [{'namespaceSelector': labels(ns='y')}], 'ports': [{'port': 'serve-80-udp',
                                                                   'protocol': 'UDP'}]})],
     (80, 'UDP'), Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True).loopback()),
    ('endPort range 80-81', [to_a({'ports': [{'port': 80, 'endPort': 81}]})], (81, 'TCP'),
     Reachability()),
    ('endPort range 81-82 excludes 80', [to_a({'ports': [{'port': 81, 'endPort': 82}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('egress to specific pods', [from_a({'to': [
        {'namespaceSelector': labels(ns='y'), 'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('x/a', '*', False).expect('x/a', 'y/b', True).loopback()),
    ('egress named port', [from_a({'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})],
     (81, 'UDP'), Reachability()),
    ('egress named port, other port', [from_a({'ports': [{'port': 'serve-81-udp',
                                                          'protocol': 'UDP'}]})],
     (80, 'UDP'), Reachability().expect('x/a', '*', False).loopback()),
    ('egress named port to some pods', [from_a({'to': [{'podSelector': labels(pod='b')}],
                                                'ports': [{'port': 'serve-80-tcp'}]})],
     (80, 'TCP'), Reachability().expect('x/a', '*', False).expect('x/a', 'x/b', True).loopback()),
    ('egress ipBlock with except', [from_a({'to': [{'ipBlock': {
        'cidr': '10.42.0.0/16', 'except': [PODS['y/b']['ip'] + '/32']}}]})], (80, 'TCP'),
     Reachability().expect('x/a', 'y/b', False)),
    ('ingress ipBlock: node1 pods', [to_a({'from': [{'ipBlock': {'cidr': '10.42.1.0/24'}}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False)
     .expect('x/a', 'x/a', True).expect('x/c', 'x/a', True).expect('y/b', 'x/a', True)
     .expect('z/a', 'x/a', True).expect('z/c', 'x/a', True)),
    ('an IP in both cidr and except is allowed by a second policy', [
        from_a({'to': [{'ipBlock': {'cidr': '10.42.0.0/16',
                                    'except': [PODS['y/b']['ip'] + '/32']}}]}),
        from_a({'to': [{'ipBlock': {'cidr': PODS['y/b']['ip'] + '/32'}}]}, key='x/allow-yb')],
     (80, 'TCP'), Reachability()),
    ('IPv6 ipBlock never matches IPv4 pods', [from_a({'to': [{'ipBlock': {
        'cidr': '::/0'}}]})], (80, 'TCP'), Reachability().expect('x/a', '*', False).loopback()),
    ('multiple policies on one pod add up', [
        to_a({'from': [{'podSelector': labels(pod='b')}]}),
        to_a({'from': [{'namespaceSelector': labels(ns='z'), 'podSelector': labels(pod='c')}]},
             key='x/allow-zc')], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True)
     .expect('z/c', 'x/a', True).loopback()),
    ('client egress deny wins over server ingress allow', [DENY_EGRESS_X, policy(
        'y/allow-all', {'podSelector': ALL, 'ingress': [{}]})], (80, 'TCP'),
     Reachability().expect('x/*', '*', False).loopback()),
    ('ingress and egress together', [policy('x/both', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Ingress', 'Egress'],
        'ingress': [{'from': [{'namespaceSelector': labels(ns='y')}]}],
        'egress': [{'to': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True)
     .expect('x/a', '*', False).expect('x/a', 'z/*', True).loopback()),
    ('policyTypes Ingress ignores egress rules', [policy('x/ingress-only', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Ingress'], 'ingress': [{}],
        'egress': [{'to': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability()),
    ('policyTypes Egress ignores ingress rules', [policy('x/egress-only', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Egress'],
        'ingress': [{'from': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability().expect('x/a', '*', False).loopback()),
    ('a policy selects only pods of its own namespace', [policy(
        'y/deny', {'podSelector': labels(pod='a')})], (80, 'TCP'),
     Reachability().expect('*', 'y/a', False).loopback()),
]


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_allowed_matches_the_hand_derived_matrix(name, policies, probe, expected):
    port, protocol = probe
    assert mismatches(expected.table, lambda s, d: allowed(
        PODS[s], PODS[d], port, protocol, CLUSTER, policies)) == []


def test_allowed_takes_ips_for_pods_nodes_and_the_outside():
    policies = [DENY_ALL_X]
    x_a = PODS['x/a']
    assert allowed(x_a['ip'], PODS['y/a']['ip'], 80, 'TCP', CLUSTER, policies) is False
    assert allowed(NODE_IPS[x_a['node']][1], x_a, 80, 'TCP', CLUSTER, policies) is True
    assert allowed(x_a, NODE_IPS[x_a['node']][0], 22, 'TCP', CLUSTER, policies) is True
    assert allowed(NODE_IPS['node2'][1], x_a, 80, 'TCP', CLUSTER, policies) is False
    assert allowed(EXTERNAL, PODS['y/a'], 80, 'TCP', CLUSTER, policies) is True
    assert allowed(x_a, EXTERNAL, 443, 'TCP', CLUSTER, policies) is False


def test_egress_named_port_to_the_outside_matches_nothing():
    policies = [from_a({'ports': [{'port': 'serve-80-tcp'}, {'port': 443}]})]
    assert allowed(PODS['x/a'], EXTERNAL, 80, 'TCP', CLUSTER, policies) is False
    assert allowed(PODS['x/a'], EXTERNAL, 443, 'TCP', CLUSTER, policies) is True


def test_selects():
    labelled = {'pod': 'a', 'tier': 'web'}
    assert selects(Selector(), {}) and selects(Selector(), labelled)
    assert selects(Selector((('pod', 'a'),)), labelled)
    assert not selects(Selector((('pod', 'a'), ('tier', 'db'))), labelled)
    requirement = (lambda op, *values: Selector(match_expressions=(
        Requirement('tier', op, values),)))
    assert selects(requirement('In', 'web', 'db'), labelled)
    assert not selects(requirement('In', 'db'), labelled)
    assert not selects(requirement('In', 'web'), {'pod': 'a'})
    assert selects(requirement('NotIn', 'db'), labelled)
    assert selects(requirement('NotIn', 'db'), {'pod': 'a'})  # absent key: NotIn matches
    assert not selects(requirement('NotIn', 'web'), labelled)
    assert selects(requirement('Exists'), labelled) and not selects(requirement('Exists'), {})
    assert selects(requirement('DoesNotExist'), {}) and not selects(
        requirement('DoesNotExist'), labelled)


def test_namespaces_match_on_their_name_label_even_when_the_caller_omits_it():
    peer_policy = to_a({'from': [{'namespaceSelector': labels(
        **{'kubernetes.io/metadata.name': 'y'})}]})
    bare = Cluster(CLUSTER.pods, {n: {} for n in 'xyz'})
    assert allowed(PODS['y/b'], PODS['x/a'], 80, 'TCP', bare, [peer_policy])
    assert not allowed(PODS['z/b'], PODS['x/a'], 80, 'TCP', bare, [peer_policy])


# -- an nft interpreter, enough for what compile_node writes ----------------------
def _value(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def _contains(right, value):
    if isinstance(right, dict) and 'set' in right:
        return any(_contains(e, value) for e in right['set'])
    if isinstance(right, dict) and 'prefix' in right:
        prefix = right['prefix']
        return value in ipaddress.ip_network('%s/%d' % (prefix['addr'], prefix['len']))
    if isinstance(right, dict) and 'range' in right:
        low, high = (_value(v) if isinstance(v, str) else v for v in right['range'])
        return low <= value <= high
    assert isinstance(right, (str, int)), right
    return (_value(right) if isinstance(right, str) else right) == value


def _left(left, packet):
    """The packet's value for an expression; None when it has no such header."""
    if 'ct' in left:
        assert left == {'ct': {'key': 'state'}}
        return packet['ct']
    if 'meta' in left:
        assert left == {'meta': {'key': 'l4proto'}}
        return packet['l4proto']
    payload = left['payload']
    if payload['protocol'] == 'ip':
        assert payload['field'] in ('saddr', 'daddr')
        return ipaddress.ip_address(packet[payload['field']])
    assert payload['field'] == 'dport' and payload['protocol'] in ('tcp', 'udp', 'sctp')
    return packet['dport'] if packet['l4proto'] == payload['protocol'] else None


def _matches(match, packet):
    value = _left(match['left'], packet)
    if match['op'] == 'in':
        return value in match['right']
    assert match['op'] == '=='
    return value is not None and _contains(match['right'], value)


def _run_rule(table, expr, packet):
    for statement in expr:
        if 'match' in statement:
            if not _matches(statement['match'], packet):
                return None
            continue
        if 'vmap' in statement:
            value = _left(statement['vmap']['key'], packet)
            hits = [v for k, v in statement['vmap']['data']['set'] if _contains(k, value)]
            if not hits:
                return None
            statement = hits[0]
        [(verdict, target)] = statement.items()
        if verdict == 'jump':
            return _run_chain(table, target['target'], packet)
        assert verdict in ('accept', 'drop', 'return'), statement
        return verdict
    raise AssertionError('rule without verdict: %s' % expr)


def _run_chain(table, chain, packet):
    """accept or drop, or None when the chain returns to its caller."""
    for expr in table[chain]:
        verdict = _run_rule(table, expr, packet)
        if verdict in ('accept', 'drop'):
            return verdict
        if verdict == 'return':
            return None
    return None


def forward(compiled, packet):
    chains, rules = compiled
    table = {c['name']: [] for c in chains}
    for chain, expr in rules:
        table[chain].append(expr)
    return _run_chain(table, 'forward', packet) or BASE_CHAIN['policy']


def compile_all(policies, pods=PODS):
    return {node: compile_node([p for p in pods.values() if p['node'] == node],
                               list(pods.values()), NAMESPACES, policies, ips)
            for node, ips in NODE_IPS.items()}


def delivered(tables, src, dst, probe, ct='new'):
    """Whether the compiled tables let a packet from src to dst through:
    the forward hook of the source pod's node, then of the destination's.
    A pod's own node talks to it through input/output, never forward."""
    if src is dst:
        return True  # loopback inside the pod
    if isinstance(src, str) and src in NODE_IPS.get(dst.get('node'), ()) or \
            isinstance(dst, str) and dst in NODE_IPS.get(src.get('node'), ()):
        return True
    port, protocol = probe
    packet = {'saddr': src['ip'] if isinstance(src, dict) else src,
              'daddr': dst['ip'] if isinstance(dst, dict) else dst,
              'l4proto': protocol.lower(), 'dport': port, 'ct': ct}
    nodes = []
    for end in (src, dst):
        if isinstance(end, dict) and end['node'] not in nodes:
            nodes.append(end['node'])
    return all(forward(tables[node], packet) == 'accept' for node in nodes)


def endpoints():
    outside = [EXTERNAL, NODE_IPS['node1'][1], NODE_IPS['node2'][0]]
    pods = list(PODS.values())
    return [(s, d) for s in pods + outside for d in pods] + [(s, d) for s in pods for d in outside]


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_compiled_tables_agree_with_allowed_everywhere(name, policies, probe, expected):
    tables = compile_all(policies)
    wrong = ['%s -> %s %s/%s: compiled %s' % (s if isinstance(s, str) else s['name'], d
                                                  if isinstance(d, str) else d['name'],
                                                  port, protocol, got)
             for s, d in endpoints() for port, protocol in PROBES
             for got in [delivered(tables, s, d, (port, protocol))]
             if got != allowed(s, d, port, protocol, CLUSTER, policies)]
    assert wrong == []


# -- structure ------------------------------------------------------------------------
def all_rules(tables):
    return [expr for _, rules in tables.values() for _, expr in rules]


def test_table_is_ip_podnet_policy_hooked_on_forward_only():
    # An ip table never sees ARP or IPv6, so neither can be dropped; node
    # traffic crosses input/output, which are not hooked.
    assert (FAMILY, TABLE) == ('ip', 'podnet-policy')
    for chains, _ in compile_all([DENY_ALL_X]).values():
        assert [c for c in chains if 'hook' in c] == [BASE_CHAIN]
        assert BASE_CHAIN == {'name': 'forward', 'type': 'filter', 'hook': 'forward',
                              'prio': 0, 'policy': 'accept'}


def test_no_policy_no_rules():
    assert compile_all([]) == {n: ([BASE_CHAIN], []) for n in NODE_IPS}


def test_a_node_whose_pods_are_not_selected_gets_no_rules():
    only_node2 = policy('x/b-only', {'podSelector': labels(pod='b')})  # x/b is on node2
    tables = compile_all([only_node2])
    assert tables['node1'] == ([BASE_CHAIN], [])
    assert tables['node2'][1]


def test_pods_allowing_everything_get_no_rules():
    tables = compile_all([DENY_INGRESS_X, policy('x/all', {'podSelector': ALL, 'ingress': [{}]})])
    assert all_rules(tables) == []


def test_established_first_drop_never_reject():
    tables = compile_all([DENY_ALL_X, to_a({'from': [{'podSelector': labels(pod='b')}]})])
    for chains, rules in tables.values():
        assert rules[0] == ('forward', netpol_nft.ESTABLISHED)
        assert 'reject' not in json.dumps(rules)
        for chain in chains[1:]:
            assert [expr for name, expr in rules if name == chain['name']][-1] == [{'drop': None}]


def test_replies_pass_even_when_everything_is_denied():
    tables = compile_all([DENY_ALL_X])
    for s, d in endpoints():
        assert delivered(tables, s, d, (80, 'TCP'), ct='established')


def test_deny_all_maps_straight_to_drop_without_chains():
    chains, rules = compile_all([DENY_ALL_X])['node1']
    assert chains == [BASE_CHAIN]
    x_pods = sorted((p for p in PODS.values() if p['namespace'] == 'x' and p['node'] == 'node1'),
                    key=lambda p: ipaddress.ip_address(p['ip']))
    entries = [[p['ip'], {'drop': None}] for p in x_pods]
    assert [expr[0]['vmap']['data']['set'] for _, expr in rules[1:]] == [entries, entries]


def test_ingress_chain_accepts_egress_chain_returns():
    tables = compile_all([to_a({'from': [{'podSelector': labels(pod='b')}]}),
                          from_a({'to': [{'podSelector': labels(pod='b')}]})])
    chains, rules = tables['node1']  # x/a is on node1
    names = [c['name'] for c in chains[1:]]
    assert [n.split('-')[0] for n in names] == ['egress', 'ingress']
    assert all(len(n.split('-')[1]) == 12 for n in names)
    body = {name: [expr[-1] for n, expr in rules if n == name] for name in names}
    assert list(body.values()) == [[{'return': None}, {'drop': None}],
                                   [{'accept': None}, {'drop': None}]]
    maps = [expr[0]['vmap']['data']['set'] for _, expr in rules[1:3]]
    assert maps == [[[PODS['x/a']['ip'], {'jump': {'target': name}}]] for name in names]


def big_cluster(per_namespace):
    pods = {}
    for n, namespace in enumerate('xyz'):
        for i in range(per_namespace):
            pod = make_pod(namespace, 'p%d' % i, n * per_namespace + i)
            pod['labels'] = {'pod': 'p%d' % i, 'role': 'client' if i % 2 else 'server'}
            pods['%s/p%d' % (namespace, i)] = pod
    return pods


def test_pods_with_the_same_rules_share_one_chain_so_rule_count_stays_flat():
    policies = [policy('x/servers', {
        'podSelector': labels(role='server'),
        'ingress': [{'from': [{'namespaceSelector': labels(ns='y')},
                              {'podSelector': labels(role='client')}],
                     'ports': [{'port': 80}, {'port': 81, 'endPort': 90},
                               {'protocol': 'UDP', 'port': 53}]}]})]
    for per_namespace in (6, 60):
        pods = big_cluster(per_namespace)
        chains, rules = compile_all(policies, pods)['node1']
        servers = sorted(ipaddress.ip_address(p['ip']) for p in pods.values()
                         if p['node'] == 'node1' and p['namespace'] == 'x'
                         and p['labels']['role'] == 'server')
        assert len(chains) == 2
        assert len(rules) == 5  # ct, vmap; the shared chain: tcp, udp, drop
        vmap = rules[1][1][0]['vmap']['data']['set']
        assert [ipaddress.ip_address(ip) for ip, _ in vmap] == servers


def test_named_ports_resolving_differently_give_different_chains():
    pods = {k: dict(p) for k, p in PODS.items()}
    pods['x/c'] = dict(pods['x/c'], ports=[{'name': 'serve-80-tcp', 'containerPort': 8080,
                                            'protocol': 'TCP'}])
    tables = compile_all([policy('x/web', {'podSelector': ALL,
                                           'ingress': [{'ports': [{'port': 'serve-80-tcp'}]}]})],
                         pods)
    chains, rules = tables['node1']  # x/a and x/c
    ports = sorted(expr[0]['match']['right'] for name, expr in rules
                   if name != 'forward' and 'match' in expr[0])
    assert (len(chains), ports) == (3, [80, 8080])


def test_same_input_in_any_order_gives_the_same_table():
    policies = [DENY_INGRESS_X, to_a({'from': [{'namespaceSelector': labels(ns='y')}],
                                      'ports': [{'port': 'serve-80-tcp'}, {'port': 81}]}),
                from_a({'to': [{'podSelector': labels(pod='b')}],
                        'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})]
    first = compile_all(policies)
    shuffled = dict(random.Random(7).sample(sorted(PODS.items()), len(PODS)))
    assert compile_all(list(reversed(policies)), shuffled) == first


def test_egress_named_port_becomes_per_pod_address_and_port():
    tables = compile_all([from_a({'to': [{'podSelector': labels(pod='b')},
                                         {'ipBlock': {'cidr': '192.0.2.0/24'}}],
                                  'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})])
    chains, rules = tables['node1']
    body = [expr for name, expr in rules if name.startswith('egress-')]
    assert body == [
        [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'daddr'}},
                    'right': PODS['x/b']['ip']}},
         {'match': {'op': '==', 'left': {'payload': {'protocol': 'udp', 'field': 'dport'}},
                    'right': 81}}, {'return': None}],
        [{'drop': None}]]


@pytest.mark.parametrize('intervals, address, printed', [
    ([(5, 5)], False, 5),
    ([(81, 81), (80, 80), (80, 80)], False, {'set': [80, 81]}),
    ([(80, 80), (81, 81), (8000, 8080)], False, {'set': [{'range': [80, 81]},
                                                         {'range': [8000, 8080]}]}),
    ([(80, 90), (85, 85), (100, 100)], False, {'set': [{'range': [80, 90]}, 100]}),
    ([(1, 65535)], False, {'range': [1, 65535]}),
    ([(0x0A000000, 0x0A0000FF), (0x0A000100, 0x0A0001FF)], True,
     {'prefix': {'addr': '10.0.0.0', 'len': 23}}),
    ([(0x0A000000, 0x0A0002FF)], True, {'range': ['10.0.0.0', '10.0.2.255']}),
    ([(0x0A000001, 0x0A000001), (0x0A000002, 0x0A000002)], True,
     {'set': ['10.0.0.1', '10.0.0.2']}),
    ([(0x0A000001, 0x0A000001), (0x0A000002, 0x0A000002), (0x0A090000, 0x0A09FFFF)], True,
     {'set': [{'range': ['10.0.0.1', '10.0.0.2']}, {'prefix': {'addr': '10.9.0.0', 'len': 16}}]}),
])
def test_canonical_sets_are_printed_as_nft_prints_them(intervals, address, printed):
    assert netpol_nft.canonical(intervals, address) == printed


def test_ip_block_except_boundaries_outside_the_cluster():
    policies = [from_a({'to': [{'ipBlock': {'cidr': '192.0.2.0/24',
                                            'except': ['192.0.2.4/30', '192.0.2.128/25']}}]})]
    tables = compile_all(policies)
    expected = {'192.0.2.0': True, '192.0.2.3': True, '192.0.2.4': False, '192.0.2.7': False,
                '192.0.2.8': True, '192.0.2.127': True, '192.0.2.128': False,
                '192.0.2.255': False, '192.0.3.0': False, '192.0.1.255': False}
    for ip, verdict in expected.items():
        assert allowed(PODS['x/a'], ip, 80, 'TCP', CLUSTER, policies) is verdict, ip
        assert delivered(tables, PODS['x/a'], ip, (80, 'TCP')) is verdict, ip
