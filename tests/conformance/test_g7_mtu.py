"""G7: the MTU is consistent along every path (vxlan: underlay - 50, e.g.
1450) and full-size packets with DF set cross nodes; one byte more does not."""
import pytest

VXLAN_OVERHEAD = 50
IP_ICMP_HEADERS = 28


def link_mtu(host, ifname, netns=None):
    prefix = 'ip netns exec %s ' % netns if netns else ''
    return int(host.check_output(prefix + 'cat /sys/class/net/%s/mtu' % ifname))


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
    for pod in sample.pods(pods):
        assert link_mtu(pod.host, 'eth0', pod.netns) == pod_mtu[pod.node], pod
        assert link_mtu(pod.host, pod.veth) == pod_mtu[pod.node], pod


def test_full_size_df_packets_cross_nodes_and_one_byte_more_does_not(pods, pod_mtu, sample):
    crossed, remotes = 0, {}
    for source, target in sample.pairs(list(pods.values()), list(pods.values())):
        if source.node != target.node:
            remotes.setdefault(source.key, []).append(target.ip)
    for key, remote in remotes.items():
        source = pods[key]
        payload = pod_mtu[source.node] - IP_ICMP_HEADERS
        lost = source.unreachable(remote, '-M do -s %d' % payload)
        assert lost == [], (source, 'full-size packets lost to', lost)
        too_big = source.run('ping -c1 -W0.2 -M do -s %s %s', str(payload + 1), remote[0])
        assert too_big.rc != 0 and 'mtu=%d' % pod_mtu[source.node] in too_big.stdout + too_big.stderr
        crossed += len(remote)
    assert crossed, 'all pods are on one node: nothing crosses'
