"""What every node needs before pods (the ground of G1-G7): its own
kernel settings for forwarding, and a routed underlay between nodes."""
import pytest
from conformance.conftest import unreachable


def test_every_node_forwards_inside_its_own_namespace(nodes):
    for name, host in nodes.items():
        assert host.sysctl('net.ipv4.ip_forward') == 1, name


def test_every_node_reaches_every_other_over_the_underlay(nodes, underlay):
    for name, host in nodes.items():
        others = [a for n, a in underlay.items() if n != name]
        assert unreachable(host, others) == [], name


def test_each_node_is_a_host_of_its_own(nodes):
    names = {name: host.check_output('hostname') for name, host in nodes.items()}
    assert names == {name: name for name in nodes}
    # Lab nodes share a kernel, VMs have the same inode for their first
    # network namespace: a node is its kernel and its namespace together.
    kernels_and_netns = {host.check_output('cat /proc/sys/kernel/random/boot_id; readlink /proc/1/ns/net')
                         for host in nodes.values()}
    if len(kernels_and_netns) < len(nodes):
        pytest.fail('two nodes share one kernel and network namespace')
