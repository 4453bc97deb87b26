"""The qemu provider keeps the netns provider's contract (inventories/vmlab,
`make test-vms`): a second lab run changes nothing, a VM whose qemu died is
found by --check and booted again by the next run, and lab_state=absent
leaves nothing (running_lab asserts zero residue: qemu, taps, overlays,
sockets, pid files)."""
import os
import signal
import time

import pytest
from integration.conftest import lab_vms, recap, running_lab
from podnet_testlib import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.vmlab]


@pytest.fixture(scope='module')
def vmlab():
    yield from running_lab(ROOT / 'inventories' / 'vmlab', 'vmlab')


def changed(done):
    return {host: counts['changed'] for host, counts in recap(done).items()}


def test_a_second_lab_run_changes_nothing(vmlab):
    assert changed(vmlab.up()) == dict.fromkeys(vmlab.hosts, 0)


def boot_ids(vmlab):
    return {name: host.check_output('cat /proc/sys/kernel/random/boot_id')
            for name, host in vmlab.hosts.items()}


def test_a_vm_whose_qemu_died_is_found_and_booted_again(vmlab):
    [(pid, _)] = [vm for vm in lab_vms('vmlab') if b'vm2' in vm[1]]
    before = boot_ids(vmlab)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists('/proc/%d' % pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # until the machine's init has reaped it
    # The lab is reconciled in one call (run once, on the first node).
    found = vmlab.up('--check', '--diff')
    assert '-    "vm2": "absent"' in found.stdout and sum(changed(found).values()) == 1, found.stdout
    assert [p for p, argv in lab_vms('vmlab') if b'vm2' in argv] == [], '--check booted it'

    healed = vmlab.up('--diff')
    assert '-    "vm2": "absent"' in healed.stdout and '+    "vm2": "running"' in healed.stdout
    [(new_pid, _)] = [vm for vm in lab_vms('vmlab') if b'vm2' in vm[1]]
    assert new_pid != pid
    # The same node again (its name, its underlay), a new kernel; the others untouched.
    vm2 = vmlab.hosts['vm2']
    assert vm2.check_output('hostname') == 'vm2'
    assert vm2.run('ping -c1 -W5 %s' % vmlab.vars['vm1']['podnet_underlay_ip']).rc == 0
    after = boot_ids(vmlab)
    assert after['vm2'] != before['vm2'] and {n: after[n] for n in ('vm1', 'vm3')} == \
        {n: before[n] for n in ('vm1', 'vm3')}
    assert changed(vmlab.up()) == dict.fromkeys(vmlab.hosts, 0)
