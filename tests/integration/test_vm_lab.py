"""The qemu provider keeps the netns provider's contract (inventories/vmlab,
`make test-vms`): a second lab run changes nothing, a VM whose qemu died is
found by --check and booted again by the next run, and lab_state=absent
leaves nothing (running_lab asserts zero residue: qemu, taps, overlays,
sockets, pid files)."""
import os
import signal

import pytest
from integration.conftest import lab_vms, recap, running_lab
from podnet_testlib import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.vmlab]


@pytest.fixture(scope='module')
def vmlab():
    yield from running_lab(ROOT / 'inventories' / 'vmlab', 'vmlab')


def changed(done):
    return {host: counts['changed'] for host, counts in recap(done).items()}


def only_vm2_changed(done):
    counts = changed(done)
    return counts.pop('vm2') > 0 and counts == {'vm1': 0, 'vm3': 0}


def test_a_second_lab_run_changes_nothing(vmlab):
    assert changed(vmlab.up()) == dict.fromkeys(vmlab.hosts, 0)


def test_a_vm_whose_qemu_died_is_found_and_booted_again(vmlab):
    [(pid, _)] = [vm for vm in lab_vms('vmlab') if b'vm2' in vm[1]]
    boot_id = vmlab.hosts['vm2'].check_output('cat /proc/sys/kernel/random/boot_id')
    os.kill(pid, signal.SIGKILL)
    found = vmlab.up('--check', '--diff')
    assert only_vm2_changed(found), found.stdout
    assert 'vm2' in found.stdout and 'not running' in found.stdout
    assert [p for p, argv in lab_vms('vmlab') if b'vm2' in argv] == [], '--check booted it'

    assert only_vm2_changed(vmlab.up())
    [(new_pid, _)] = [vm for vm in lab_vms('vmlab') if b'vm2' in vm[1]]
    assert new_pid != pid
    # The same node again: its name and underlay, a new kernel.
    vm2 = vmlab.hosts['vm2']
    assert vm2.check_output('hostname') == 'vm2'
    assert vm2.run('ping -c1 -W5 %s' % vmlab.vars['vm1']['podnet_underlay_ip']).rc == 0
    assert vm2.check_output('cat /proc/sys/kernel/random/boot_id') != boot_id
    assert changed(vmlab.up()) == dict.fromkeys(vmlab.hosts, 0)
