"""The path explainer without a lab: the request checked against the pods
(each bad argument named), the legs each node reads, the nat table judged
from its rules, the source address read from conntrack, the text output."""
import pytest
from podnet_testlib import ROOT
from ansible.module_utils.podnet.explain import explain, pathtrace
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.node.network import nat_ruleset


def pod(ip, mac, veth, ports=()):
    return {'ip': ip, 'mac': mac, 'netns': 'cni-%s' % veth, 'veth': veth,
            'ports': [{'name': None, 'containerPort': p, 'protocol': 'TCP'} for p in ports]}


PODS = {'node1': {'default/a': pod('10.42.0.2', '02:00:00:00:00:02', 'veth00000002', [8080]),
                  'default/c': pod('10.42.0.3', '02:00:00:00:00:03', 'veth00000003')},
        'node2': {'default/b': pod('10.42.1.2', '02:00:00:00:01:02', 'veth00000102', [80]),
                  'default/nip': dict(pod(None, None, 'veth00000103'), ip=None)}}


def test_a_cross_node_request_gives_each_node_its_half():
    found = explain.locate(PODS, explain.Request('default/a', 'default/b', None, 'tcp'))
    assert (found['port'], found['protocol']) == (80, 'TCP')  # b declares 80
    assert found['legs']['node1'] == {
        'src': '10.42.0.2', 'dst': '10.42.1.2', 'port': 80, 'protocol': 'TCP', 'probe': True,
        'source_pod': {'key': 'default/a', 'netns': 'cni-veth00000002', 'veth': 'veth00000002'}}
    assert found['legs']['node2']['destination_pod']['mac'] == '02:00:00:00:01:02'


def test_same_node_same_pod_and_an_address():
    assert list(explain.locate(PODS, explain.Request('default/a', 'default/c'))['legs']) == ['node1']
    assert 'destination_pod' in explain.locate(PODS, explain.Request('default/a', 'default/c'))['legs']['node1']
    assert 'destination_pod' not in explain.locate(PODS, explain.Request('default/a', 'default/a'))['legs']['node1']
    outside = explain.locate(PODS, explain.Request('default/a', '203.0.113.10', '443'))
    assert outside['destination'] == {'key': '203.0.113.10', 'ip': '203.0.113.10'}
    assert outside['port'] == 443 and list(outside['legs']) == ['node1']
    assert explain.locate(PODS, explain.Request('default/a', '10.42.1.2'))['destination']['key'] == 'default/b'


@pytest.mark.parametrize('args, subject, message', [
    (('default/x', 'default/b'), 'from', 'no pod default/x runs in the cluster (pods: default/a, '
                                         'default/b, default/c, default/nip)'),
    (('a', 'default/b'), 'from', "'a' is not a pod as namespace/name"),
    (('', 'default/b'), 'from', 'missing: give -e from=<namespace>/<name>'),
    (('default/nip', 'default/b'), 'from', 'pod default/nip has no IP (its sandbox is not wired)'),
    (('default/a', 'default/nip'), 'to', 'pod default/nip has no IP'),
    (('default/a', 'example.com'), 'to', "'example.com' is neither a pod"),
    (('default/a', 'default/b', '0'), 'port', '0 is not a port from 1 to 65535'),
    (('default/a', 'default/b', '8o'), 'port', "'8o' is not a port number"),
    (('default/a', 'default/b', '80', 'icmp'), 'protocol', "'icmp' must be one of TCP, UDP, SCTP")])
def test_bad_arguments_are_named(args, subject, message):
    with pytest.raises(SpecError) as raised:
        explain.locate(PODS, explain.Request(*args))
    assert raised.value.subject == subject and message in str(raised.value)


def nat_table(rules):
    """`nft -j list ruleset` of podnet's nat table holding these postrouting rules."""
    items = [{'table': {'family': 'ip', 'name': 'podnet-nat'}},
             {'chain': {'family': 'ip', 'table': 'podnet-nat', 'name': 'postrouting', 'type': 'nat',
                        'hook': 'postrouting', 'prio': 100, 'policy': 'accept'}}]
    items += [{'rule': {'family': 'ip', 'table': 'podnet-nat', 'chain': 'postrouting', 'expr': e}}
              for e in rules]
    return {'nftables': items}


def nat_says(ruleset, src, dst):
    return pathtrace.nat_hop(ruleset, {'src': src, 'dst': dst, 'protocol': 'tcp', 'dport': 80,
                                       'iif': 'veth1', 'oif': 'eth0'})['says']


def test_the_nat_decision_is_read_from_the_rules():
    _, rules = nat_ruleset('10.42.0.0/24', '10.42.0.0/16')
    ruleset = nat_table([rules[0][1]])
    assert nat_says(ruleset, '10.42.0.2', '203.0.113.10') == (
        "chain postrouting rule 0 masquerades 10.42.0.2 -> 203.0.113.10: the destination sees "
        "the node's address")
    for src, dst in (('10.42.0.2', '10.42.1.2'), ('10.42.9.2', '203.0.113.10')):
        assert nat_says(ruleset, src, dst) == 'no rule matches %s -> %s: the source address is kept' % (
            src, dst)
    assert nat_says({'nftables': []}, 'a', 'b') == 'missing: nothing is masqueraded'
    unknown = nat_table([[{'match': {'op': '==', 'left': {'meta': {'key': 'mark'}}, 'right': 1}},
                          {'masquerade': None}]])
    assert nat_says(unknown, '10.42.0.2', '203.0.113.10').startswith(
        'cannot be read: ip podnet-nat chain postrouting rule 0')
    unsure = nat_table([unknown['nftables'][2]['rule']['expr'], rules[0][1]])
    assert nat_says(unsure, '10.42.0.2', '203.0.113.10').endswith(
        "the destination sees the node's address (not judged before it: ip podnet-nat chain "
        "postrouting rule 0 (match on {'meta': {'key': 'mark'}}))")


def entry(reply_dst, timeout):
    """A conntrack entry as pyroute2 dumps it: the fields newest_reply reads."""
    from pyroute2.conntrack import NFCTAttrTuple
    found = type('Entry', (), {})()
    found.tuple_reply, found.timeout = NFCTAttrTuple(saddr='10.42.1.2', daddr=reply_dst), timeout
    return found


def test_the_source_the_destination_saw_is_the_reply_destination_of_the_newest_entry():
    """Regression (issue 22): conntrack was read as /proc/net/nf_conntrack
    text, which a kernel without CONFIG_NF_CONNTRACK_PROCFS lacks."""
    assert pathtrace.newest_reply([entry('10.42.0.2', 117)]).daddr == '10.42.0.2'
    assert pathtrace.newest_reply([entry('10.42.0.2', 3), entry('10.11.1.11', 29)]).daddr == '10.11.1.11'
    assert pathtrace.newest_reply([]) is None


def test_the_conntrack_table_is_read_over_netlink_in_the_node_s_namespace():
    """A UDP datagram from one address of a fresh namespace to another,
    masqueraded by nothing: conntrack's reply goes back to its source."""
    import subprocess
    import sys
    script = ("import socket, sys; sys.path[:0] = %r\n"
              "import podnet_testlib\n"
              "from ansible.module_utils.podnet.explain import pathtrace\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n"
              "s.sendto(b'x', ('127.0.0.2', 9))\n"
              "print(pathtrace.seen_source('127.0.0.1', '127.0.0.2', 9, 'UDP'))\n") % [str(ROOT / 'tests')]
    done = subprocess.run(['unshare', '--net', 'sh', '-c', 'ip link set lo up && modprobe nf_conntrack 2>/dev/null;'
                           ' nft add table ip t && nft "add chain ip t c { type filter hook output priority 0; }"'
                           ' && nft add rule ip t c ct state new accept && exec "$0" -c "$1"', sys.executable, script],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == '127.0.0.1', done.stderr


def test_text_output_marks_the_hop_that_stops_the_packet():
    hops = [pathtrace.hop('x/a eth0', 'ip route get 10.42.1.2', 'no route in the pod: unreachable'),
            pathtrace.hop('probe', 'x/b: timeout')]
    assert explain.lines(hops) == [
        ' 1  x/a eth0  ip route get 10.42.1.2  <-- no route in the pod: unreachable',
        ' 2  probe     x/b: timeout']
    assert explain.first_problem(hops) is hops[0]


class FakeRtnl:
    """Just enough of IPRoute for pathtrace.Netns: one bridge, no veth."""

    def get_links(self):
        return [{'index': 3, 'IFLA_IFNAME': 'cni0', 'flags': 1, 'IFLA_OPERSTATE': 'UP', 'IFLA_MTU': 1450}]

    def get_neighbours(self, **_):
        return []


def test_a_missing_link_is_a_problem_named_not_a_crash():
    ns = pathtrace.Netns(FakeRtnl())
    assert ns.link_says('veth0000dead') == ('veth0000dead: no such link', 'veth0000dead is missing')
    assert ns.neighbour('veth0000dead', '10.42.0.9') == (None, None)
    hops = pathtrace._to_local_pod(ns, 'node1', '10.42.0.9', {
        'key': 'x/b', 'mac': '02:00:00:00:00:09', 'veth': 'veth0000dead'})
    assert hops[-1] == {'at': 'node1 veth0000dead', 'says': 'veth0000dead: no such link',
                        'problem': 'veth0000dead is missing'}
