"""What a VM is told at boot through qemu fw_cfg, and the refusals of bad values."""
import pytest

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.lab.vmguest import (CONFIG_SCRIPT, FW_CFG_DIR, GUEST_FILES, MGMT_TABLE,
                                                 VmConfig, fw_cfg_files)

KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n'


def config(**changes):
    fields = dict(hostname='node1', underlay_mac='02:00:00:00:00:01', underlay_cidr='10.11.1.11/24',
                  underlay_gateway='10.11.1.1', mgmt_mac='02:00:00:00:00:02',
                  lab_prefixes=('10.42.0.0/16', '10.11.1.0/24', '203.0.113.0/24'),
                  host_key=KEY, authorized_keys='ssh-ed25519 AAAA lab\n')
    fields.update(changes)
    return VmConfig(**fields)


def test_fw_cfg_files_carry_every_setting():
    files = fw_cfg_files(config())
    assert list(files) == ['opt/podnet/hostname', 'opt/podnet/network',
                           'opt/podnet/host_key', 'opt/podnet/authorized_keys']
    assert files['opt/podnet/hostname'] == 'node1\n'
    assert files['opt/podnet/network'] == (
        'UNDERLAY_MAC=02:00:00:00:00:01\nUNDERLAY_CIDR=10.11.1.11/24\nUNDERLAY_GATEWAY=10.11.1.1\n'
        'UNDERLAY_MTU=1500\nMGMT_MAC=02:00:00:00:00:02\n'
        'LAB_PREFIXES=10.42.0.0/16 10.11.1.0/24 203.0.113.0/24\n')
    assert files['opt/podnet/host_key'] == KEY
    assert files['opt/podnet/authorized_keys'] == 'ssh-ed25519 AAAA lab\n'


@pytest.mark.parametrize('changes, field', [
    ({'hostname': 'Node_1'}, 'hostname'),
    ({'underlay_mac': '02:00:00:00:00'}, 'underlay_mac'),
    ({'mgmt_mac': '02:00:00:00:00:0G'}, 'mgmt_mac'),
    ({'underlay_gateway': '10.11.2.1'}, 'underlay_gateway'),
    ({'underlay_cidr': '10.11.1.300/24'}, 'underlay'),
    ({'lab_prefixes': ('10.42.0.0/33',)}, 'underlay'),
    ({'host_key': 'ssh-ed25519 AAAA'}, 'host_key'),
])
def test_bad_values_are_refused_naming_vm_and_field(changes, field):
    with pytest.raises(SpecError, match=r'^node1: %s: ' % field if field != 'hostname' else 'hostname'):
        fw_cfg_files(config(**changes))


def test_the_guest_reads_the_same_names_and_routes_only_its_own_traffic_via_mgmt():
    for name in fw_cfg_files(config()):
        assert 'get %s' % name.rsplit('/', 1)[1] in CONFIG_SCRIPT
    assert FW_CFG_DIR in CONFIG_SCRIPT and 'modprobe qemu_fw_cfg' in CONFIG_SCRIPT
    assert 'IncomingInterface=lo\nTable=%d' % MGMT_TABLE in CONFIG_SCRIPT
    assert 'RouteTable=%d' % MGMT_TABLE in CONFIG_SCRIPT
    assert 'SuppressPrefixLength=0' in CONFIG_SCRIPT
    assert GUEST_FILES['/usr/local/sbin/podnet-vm-config'] == (CONFIG_SCRIPT, 0o755)
