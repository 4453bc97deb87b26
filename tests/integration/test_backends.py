"""Switching backends converts a running cluster: vxlan -> host-gw -> vxlan
on the 3-node lab, with pods keeping their addresses and reaching each
other across nodes at every step."""
import pytest
from integration.conftest import playbook, running_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab')


def converge(lab, backend):
    playbook(lab.inventory, 'playbooks/site.yml', '-e', 'podnet_backend=' + backend)


def pod_ips(host):
    out = host.check_output("sh -c 'cat /var/lib/podnet/pods/*.json'")
    return sorted(line.split('"')[3] for line in out.splitlines() if line.strip().startswith('"ip"'))


def cross_node_pings(lab, size):
    """Pings with DF at `size` bytes from node1's pods to the other nodes' pods."""
    node1 = lab.hosts['node1']
    netns = node1.check_output('ip netns list').split()[0]
    targets = [ip for name, host in lab.hosts.items() if name != 'node1' for ip in pod_ips(host)]
    assert targets
    return [node1.run('ip netns exec %s ping -c1 -W2 -M do -s %s %s', netns, str(size), ip).rc
            for ip in targets]


def test_vxlan_then_host_gw_then_vxlan(lab):
    converge(lab, 'vxlan')
    node1 = lab.hosts['node1']
    before = {n: pod_ips(h) for n, h in lab.hosts.items()}
    assert node1.run('ip link show flannel.1').rc == 0
    assert set(cross_node_pings(lab, 1422)) == {0}

    converge(lab, 'host-gw')
    assert node1.run('ip link show flannel.1').rc != 0
    assert 'via 10.11.1.12 dev eth0 proto 200' in node1.check_output('ip route')
    assert node1.check_output('cat /sys/class/net/cni0/mtu') == '1500'
    assert set(cross_node_pings(lab, 1472)) == {0}
    assert {n: pod_ips(h) for n, h in lab.hosts.items()} == before

    converge(lab, 'vxlan')
    assert 'via 10.11.1.12 dev eth0' not in node1.check_output('ip route')
    assert set(cross_node_pings(lab, 1422)) == {0}
    assert set(cross_node_pings(lab, 1423)) == {1}
