"""VM nodes of the lab, as the lab module declares them to qemu."""
import copy

from ansible.module_utils.podnet.lab import inventory
from ansible.module_utils.podnet.lab.reconciler import LabPaths
from ansible.module_utils.podnet.lab.vms import LabVms
from samples import LAB, NODES


def lab_vms(tmp_path, mixed=False):
    nodes = copy.deepcopy(NODES)
    for i, node in enumerate(nodes[mixed:]):
        node.update(kind='qemu', mgmt_ip='127.0.0.1', ssh_port=2231 + i)
    spec = inventory.parse(copy.deepcopy(LAB), nodes)
    paths = LabPaths(str(tmp_path), spec.name, '/init', '/python', '/var/lib/podnet')
    return LabVms(spec, paths, '10.42.0.0/16')


def test_the_guest_routes_the_cluster_racks_and_only_the_outside_host(tmp_path):
    """The outside range may hold a package mirror's address (here it does):
    the guest's own apt must not be sent into the fabric."""
    assert lab_vms(tmp_path).lab_prefixes() == (
        '10.42.0.0/16', '10.11.1.0/24', '10.11.2.0/24', '203.0.113.10/32')


def test_a_vm_gets_its_rack_address_gateway_keys_and_fabric_namespace(tmp_path):
    vm = lab_vms(tmp_path).vm('node2', 4242)
    assert (vm.underlay_cidr, vm.underlay_gateway, vm.ssh_port) == ('10.11.2.12/24', '10.11.2.1', 2232)
    assert vm.fabric_netns == '/proc/4242/ns/net'
    assert vm.host_key == str(tmp_path / 'ssh' / 'ssh_host_ed25519_key')
    assert vm.authorized_keys == str(tmp_path / 'ssh' / 'id_ed25519.pub')


def test_a_mixed_lab_has_vms_and_netns_nodes(tmp_path):
    vms = lab_vms(tmp_path, mixed=True)
    assert [n.name for n in vms.nodes()] == ['node2']
    assert vms.is_vm('node2') and not vms.is_vm('node1')
    assert vms.control_socket_prefixes() == ['127.0.0.1-2231-']


def test_a_vm_whose_qemu_is_not_running_is_a_problem(tmp_path):
    assert lab_vms(tmp_path).state('node1', None) == {'pid': None, 'problems': ['not running']}
