"""Kernel names: within IFNAMSIZ, stable, prefixed in the root namespace."""
from ansible.module_utils.podnet.core import names


def test_short_names_stay_readable():
    assert names.mgmt_bridge('lab') == 'pnlab-mgmt'
    assert names.mgmt_port('lab', 'node1') == 'pnlab-node1'
    assert names.fabric_port('node1') == 'p-node1'
    assert names.rack_bridge('rack1') == 'br-rack1'


def test_long_names_are_hashed_stably_within_ifnamsiz():
    long = 'worker-node-with-a-long-name'
    first = names.mgmt_port('mrack', long)
    assert first == names.mgmt_port('mrack', long)
    assert first.startswith('pnmrack-') and len(first) <= names.IFNAMSIZ
    assert first != names.mgmt_port('mrack', long + '2')


def test_every_root_object_carries_the_lab_prefix():
    prefix = names.root_prefix('lab')
    assert names.mgmt_bridge('lab').startswith(prefix)
    assert names.mgmt_port('lab', 'x' * 40).startswith(prefix)


def test_stable_mac_is_unicast_local_and_deterministic():
    mac = names.stable_mac('lab', 'node1', 'underlay')
    assert mac == names.stable_mac('lab', 'node1', 'underlay')
    assert mac != names.stable_mac('lab', 'node2', 'underlay')
    first = int(mac.split(':')[0], 16)
    assert first & 0x02 and not first & 0x01 and len(mac) == 17
