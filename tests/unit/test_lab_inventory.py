"""The lab's address plan: accepted plans and every refusal, by field."""
import copy
import ipaddress

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.lab import inventory
from samples import LAB, parse_with


def refusal(**kwargs):
    with pytest.raises(SpecError) as info:
        parse_with(**kwargs)
    return str(info.value)


def test_valid_plan_parses_into_typed_spec():
    spec = parse_with()
    assert spec.name == 'lab'
    assert [n.rack for n in spec.nodes] == ['rack1', 'rack2']
    assert spec.racks['rack2'].gateway_cidr == '10.11.2.1/24'
    assert spec.outside_host == ipaddress.IPv4Address('203.0.113.10')


def test_rack_defaults_to_the_first_rack():
    spec = parse_with(node_change=lambda n: n[0].pop('rack'))
    assert spec.nodes[0].rack == 'rack1'


@pytest.mark.parametrize('change, field, words', [
    (lambda lab: lab['racks']['rack2'].update(subnet='10.11.1.128/25', gateway='10.11.1.129'),
     'podnet_lab.racks.rack2.subnet', 'overlaps podnet_lab.racks.rack1.subnet'),
    (lambda lab: lab['mgmt'].update(subnet='172.30.0.0/33'), 'podnet_lab.mgmt.subnet', 'not an IPv4 subnet'),
    (lambda lab: lab['mgmt'].update(subnet='172.30.0.5/24'), 'podnet_lab.mgmt.subnet', 'host bits'),
    (lambda lab: lab['racks']['rack1'].update(gateway='10.11.9.1'), 'podnet_lab.racks.rack1.gateway',
     'outside its subnet'),
    (lambda lab: lab['outside'].update(host_ip='203.0.113.255'), 'podnet_lab.outside.host_ip', 'broadcast'),
    (lambda lab: lab.update(name='Lab-1'), 'podnet_lab.name', 'lowercase'),
    (lambda lab: lab.update(mtu=100), 'podnet_lab.mtu', '1280 to 9000'),
    (lambda lab: lab.update(racks={}), 'podnet_lab.racks', 'at least one rack'),
])
def test_bad_lab_settings_name_their_field(change, field, words):
    message = refusal(lab_change=change)
    assert message.startswith(field + ':') and words in message


@pytest.mark.parametrize('change, field, words', [
    (lambda n: n[1].update(mgmt_ip='172.30.0.11'), 'node2: ansible_host', 'already used by node1'),
    (lambda n: n[1].update(mgmt_ip='172.30.0.1'), 'node2: ansible_host', 'podnet_lab.mgmt.host_ip'),
    (lambda n: n[0].update(mgmt_ip='172.31.0.11'), 'node1: ansible_host', 'outside its subnet'),
    (lambda n: n[1].update(underlay_ip='10.11.1.12'), 'node2: podnet_underlay_ip', 'outside its subnet'),
    (lambda n: n[1].update(underlay_ip='10.11.2.1'), 'node2: podnet_underlay_ip', 'podnet_lab.racks.rack2.gateway'),
    (lambda n: n[0].update(rack='rack9'), 'node1: podnet_rack', "unknown rack 'rack9'"),
    (lambda n: n[0].update(underlay_ip='10.11.1.x'), 'node1: podnet_underlay_ip', 'not an IPv4 address'),
    (lambda n: n.append(dict(n[0])), 'node1: inventory name', 'already used'),
    (lambda n: n[0].update(name='Node_1'), 'Node_1: inventory name', 'not a DNS label (a-z, 0-9 and -'),
])
def test_bad_node_settings_name_host_and_field(change, field, words):
    message = refusal(node_change=change)
    assert message.startswith(field + ':') and words in message


def test_overlap_with_a_reserved_network_names_both():
    route = ipaddress.IPv4Network('10.11.0.0/16')
    message = refusal(reserved=[('the controller route 10.11.0.0/16 dev eth0', route)])
    assert message.startswith('podnet_lab.racks.rack1.subnet:')
    assert 'the controller route 10.11.0.0/16 dev eth0' in message


def test_reserved_networks_may_overlap_each_other():
    reserved = [('a', ipaddress.IPv4Network('192.0.2.0/24')),
                ('b', ipaddress.IPv4Network('192.0.2.0/25'))]
    assert parse_with(reserved=reserved).name == 'lab'


def test_empty_node_group_is_refused():
    with pytest.raises(SpecError, match='nodes: the inventory group `nodes` has no hosts'):
        inventory.parse(copy.deepcopy(LAB), [])


def vm_nodes(nodes):
    nodes[:] = [dict(n, kind='qemu', mgmt_ip='127.0.0.1', ssh_port=2231 + i) for i, n in enumerate(nodes)]


def test_qemu_nodes_are_reached_on_loopback_ports():
    spec = parse_with(node_change=vm_nodes)
    assert [(n.kind, str(n.mgmt_ip), n.ssh_port) for n in spec.nodes] == [
        ('qemu', '127.0.0.1', 2231), ('qemu', '127.0.0.1', 2232)]


def test_a_qemu_node_off_loopback_is_refused_naming_it():
    def change(nodes):
        vm_nodes(nodes)
        nodes[1]['mgmt_ip'] = '172.30.0.12'
    assert refusal(node_change=change).startswith('node2: ansible_host')


def test_two_qemu_nodes_on_one_port_are_refused():
    def change(nodes):
        vm_nodes(nodes)
        nodes[1]['ssh_port'] = 2231
    assert 'node2: ansible_port' in refusal(node_change=change)


def test_an_unknown_node_kind_is_refused():
    def change(nodes):
        nodes[0]['kind'] = 'docker'
    assert refusal(node_change=change).startswith('node1: podnet_lab_kind')
