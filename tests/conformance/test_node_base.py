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
    boot_ids = {host.check_output('readlink /proc/1/ns/net') for host in nodes.values()}
    if len(nodes) > 1 and len(boot_ids) == 1:
        pytest.fail('all nodes share one network namespace')
