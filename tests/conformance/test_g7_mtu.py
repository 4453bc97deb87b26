"""G7: the MTU is consistent along every path (vxlan: underlay - 50, e.g.
1450) and full-size packets with DF set cross nodes; one byte more does not."""
import functools

import pytest
from conformance.conftest import at_once, on_each_node, unreachable_from

VXLAN_OVERHEAD = 50
IP_ICMP_HEADERS = 28


def link_mtu(host, ifname):
    return int(host.check_output('cat /sys/class/net/%s/mtu' % ifname))


@pytest.fixture(scope='module')
def pod_mtu(nodes, underlay):
    """The MTU pods must have on each node, from its underlay and backend."""
    found = {}
    for name, host in nodes.items():
        dev = host.check_output("ip -o -4 addr show | awk '$4 ~ /^%s\\// {print $2}'" % underlay[name])
        vxlan = host.run('test -e /sys/class/net/flannel.1').rc == 0
        found[name] = link_mtu(host, dev) - (VXLAN_OVERHEAD if vxlan else 0)
    return found


def test_mtu_is_consistent_on_every_hop(nodes, pods, pod_mtu, sample):
    for name, host in nodes.items():
        assert link_mtu(host, 'cni0') == pod_mtu[name]
        if host.run('test -e /sys/class/net/flannel.1').rc == 0:
            assert link_mtu(host, 'flannel.1') == pod_mtu[name]
    by_node = on_each_node(sample.pods(pods))
    seen = at_once({node: functools.partial(pod_mtus, on_node) for node, on_node in by_node.items()})
    for node, on_node in by_node.items():
        assert seen[node] == {pod.key: (pod_mtu[node], pod_mtu[node]) for pod in on_node}


def pod_mtus(on_node):
    """{pod key: (MTU of its eth0, MTU of its veth)} of pods of one node, in
    one SSH round trip."""
    script = ''.join('echo %s $(%scat /sys/class/net/eth0/mtu) $(cat /sys/class/net/%s/mtu); '
                     % (pod.key, pod.inside, pod.veth) for pod in on_node)
    found = {}
    for line in on_node[0].host.check_output("sh -c '%s'" % script).splitlines():
        key, *mtus = line.split()
        found[key] = tuple(int(m) for m in mtus) if len(mtus) == 2 else tuple(mtus)
    return found


def test_full_size_df_packets_cross_nodes_and_one_byte_more_does_not(pods, pod_mtu, sample):
    remotes = {}
    for source, target in sample.pairs(list(pods.values()), list(pods.values())):
        if source.node != target.node:
            remotes.setdefault(source.key, []).append(target.ip)
    assert remotes, 'all pods are on one node: nothing crosses'
    by_mtu = {}
    for key, ips in remotes.items():
        by_mtu.setdefault(pod_mtu[pods[key].node], {})[key] = ips
    for mtu, targets in by_mtu.items():
        lost = unreachable_from(pods, targets, '-M do -s %d' % (mtu - IP_ICMP_HEADERS))
        assert {key: ips for key, ips in lost.items() if ips} == {}, 'full-size packets lost'
    by_node = on_each_node(pods[key] for key in remotes)
    refused = at_once({node: functools.partial(one_byte_more, on_node, pod_mtu[node] - IP_ICMP_HEADERS + 1,
                                               remotes) for node, on_node in by_node.items()})
    for node, on_node in by_node.items():
        assert set(refused[node]) == {pod.key for pod in on_node}, refused[node]
        for key, (rc, said) in refused[node].items():
            assert rc != 0 and 'mtu=%d' % pod_mtu[node] in said, (key, rc, said)


def one_byte_more(sources, size, remotes):
    """{pod key: (exit status, output)} of one ping with DF set and `size`
    bytes from each source (all on one node) to its first remote, all at
    once in one SSH round trip: ping waits its -W even for a packet its own
    eth0 refused, 0.2 s a pod in a row. Each answer is one short line (one
    write, so lines of pings ending together do not mix)."""
    script = ''.join('(out=$(%sping -c1 -W0.2 -M do -s %d %s 2>&1); rc=$?; echo "@@ %s $rc" $out) & '
                     % (s.inside, size, remotes[s.key][0], s.key) for s in sources)
    out = sources[0].host.run("sh -c 'set -f; %swait'" % script).stdout  # $out: words, never globs
    found = {}
    for line in out.splitlines():
        if line.startswith('@@ '):
            _, key, rc, said = (line + ' ').split(' ', 3)
            found[key] = (int(rc), said)
    return found
