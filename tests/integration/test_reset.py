"""playbooks/reset.yml undoes site.yml: every node is left as it was before
(links, nft tables, netns, sysctl.d, modules-load.d, CNI and podman
configuration and state files, processes); --check reports the reset without making it; a second reset
changes nothing; and site.yml converges the reset cluster again. The test
runs on a netns lab of its own (tests/integration/reset_inventory, lab
`reset`) and, under `make test-vms`, on fresh VMs (inventories/vmlab)."""
import re
from pathlib import Path

import pytest
from integration.conftest import playbook, recap, running_lab
from podnet_testlib import ROOT

pytestmark = pytest.mark.lab

INVENTORY = Path(__file__).resolve().parent / 'reset_inventory'
SANDBOX, VETH = re.compile(r'cni-[0-9a-f-]{36}'), re.compile(r'veth[0-9a-f]{8}')
LISTENER = ' [listener]'  # sshd's listener title ends with a count of connections in progress
UDEV_WORKER = '(udev-worker)'
MODULE_SERVER = '/roles/lab/files/module-server/podnet_module_server.py '


@pytest.fixture(scope='module', params=[
    pytest.param((INVENTORY, 'reset'), id='netns'),
    pytest.param((ROOT / 'inventories' / 'vmlab', 'vmlab'), id='qemu', marks=pytest.mark.vmlab)])
def lab(request):
    yield from running_lab(*request.param, fresh=True)  # 'before' must be a node site.yml never saw


def processes(host):
    """Command lines on the node, without the SSH sessions (this one too),
    a VM's kernel threads (children of kthreadd), systemd-udevd's idle
    workers (its pool for kernel events, such as the reset's link removals;
    they exit by themselves) and a lab node's module server (how the lab
    runs modules, the reset's own too; it exits by itself when idle)."""
    out = host.check_output("sh -c 'ps -o sid= -p $$; ps -eo sid=,ppid=,pid=,args='").splitlines()
    own = out[0].strip()
    rows = [line.split(None, 3) for line in out[1:]]
    kthreadd = {pid for _, _, pid, args in rows if args == '[kthreadd]'}
    return sorted(args.split(LISTENER)[0] for sid, ppid, pid, args in rows
                  if sid != own and not args.startswith('sshd: root@') and args != UDEV_WORKER
                  and MODULE_SERVER not in args and not kthreadd & {pid, ppid})


def snapshot(host):
    """What site.yml may add to a node, as sets a reset must restore."""
    lines = host.check_output
    return {'links': sorted(link.split(': ')[1].split('@')[0] for link in lines('ip -o link').splitlines()),
            'nft': sorted(lines('nft list tables').splitlines()),
            'netns': sorted(lines('ip netns list').splitlines()),
            # /var/lib/podnet is a lab node's mount point, and absent on a fresh VM;
            # so are the CNI and podman folders (the cni role).
            'files': sorted(lines("sh -c 'find /etc/sysctl.d /etc/modules-load.d /var/lib/podnet /etc/cni "
                                  "/opt/cni /var/lib/cni /etc/containers 2>/dev/null; true'").splitlines()),
            'processes': processes(host)}


def snapshots(lab):
    return {name: snapshot(host) for name, host in lab.hosts.items()}


def changed(done):
    return {host: counts['changed'] for host, counts in recap(done).items()}


def run(lab, name, *args):
    return playbook(lab.inventory, 'playbooks/%s.yml' % name, *args, timeout=lab.timeout)


def test_reset_leaves_each_node_as_before_site_and_site_converges_again(lab):
    before = snapshots(lab)
    run(lab, 'site')
    converged = snapshots(lab)
    assert all(converged[n] != before[n] for n in before), 'site.yml changed nothing to reset'

    check = run(lab, 'reset', '--check')
    assert all(changed(check)[n] > 0 for n in lab.hosts), check.stdout
    assert snapshots(lab) == converged, '--check changed the nodes'

    run(lab, 'reset')
    assert snapshots(lab) == before

    assert changed(run(lab, 'reset')) == dict.fromkeys(lab.hosts, 0)
    assert changed(run(lab, 'reset', '--check')) == dict.fromkeys(lab.hosts, 0)
    assert snapshots(lab) == before

    run(lab, 'site')
    assert without_ids(snapshots(lab)) == without_ids(converged)


def without_ids(found):
    """Snapshots with sandbox and veth names made generic: a converge after
    the reset gives pods new sandboxes, and nothing else may differ."""
    def generic(item):
        return SANDBOX.sub('cni-*', VETH.sub('veth*', item))
    return {node: {kind: sorted(map(generic, items)) for kind, items in snap.items()}
            for node, snap in found.items()}
