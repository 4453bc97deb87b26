"""The spawner's sandboxes, for real, inside a throwaway node (new network,
mount and PID namespaces with a private /run): nothing outlives the test.
Needs root; skipped with the reason otherwise."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'),
                                reason='needs root and unshare to make a throwaway node')

SCRIPT = r'''
import json, os, subprocess, sys
sys.path.insert(0, %(tests)r)
import podnet_testlib
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
from ansible.module_utils.podnet.kernel.netlink import add_veth, rtnl, ensure_bridge
from ansible.module_utils.podnet.pods.sandbox import SpawnerClient
with rtnl() as ipr:
    bridge = ensure_bridge(ipr, 'cni0', 1450)
    ipr.addr('add', index=bridge, address='10.42.7.1', prefixlen=24)
    ipr.link('set', index=bridge, state='up')
    add_veth(ipr, 'vlab0', 'vlab1', os.getpid(), 1500)
spawn = SpawnerClient()
pause = spawn.request('t', op='sandbox', netns='/run/netns/cni-test', hostname='web-0',
                      veth='veth0badcafe', mac='02:00:00:00:00:07', cidr='10.42.7.9/24', mtu=1450,
                      gateway='10.42.7.1', broadcast='10.42.7.255', bridge=bridge)
spawn.close()
run = lambda *argv: subprocess.run(argv, capture_output=True, text=True).stdout
print(json.dumps({
    'cmdline': open('/proc/%%d/cmdline' %% pause.pid).read(),
    'nspid': [l.split()[1:] for l in open('/proc/%%d/status' %% pause.pid) if l.startswith('NSpid')][0],
    'sigign': [l.split()[1] for l in open('/proc/%%d/status' %% pause.pid) if l.startswith('SigIgn')][0],
    'identify': run('ip', 'netns', 'identify', str(pause.pid)).strip(),
    'hostname': run('nsenter', '-t', str(pause.pid), '-u', 'hostname').strip(),
    'pod': run('ip', '-n', 'cni-test', '-d', 'addr'),
    'route': run('ip', '-n', 'cni-test', 'route'),
    'host': run('ip', '-d', 'link', 'show', 'veth0badcafe'),
    'lab_veth': run('ip', '-d', 'link', 'show', 'vlab0') + run('ip', '-d', 'link', 'show', 'vlab1'),
    'ping': subprocess.run(['ip', 'netns', 'exec', 'cni-test', 'ping', '-c1', '-W2', '10.42.7.1'],
                           capture_output=True).returncode}))
'''


@pytest.fixture(scope='module')
def sandbox():
    done = subprocess.run(
        ['unshare', '--net', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
         sys.executable, '-c', SCRIPT % {'tests': str(ROOT / 'tests')}],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pause_is_pid_1_of_its_own_pid_namespace(sandbox):
    assert sandbox['cmdline'].rstrip('\0') == '/pause'
    assert sandbox['nspid'][-1] == '1' and len(sandbox['nspid']) == 2


def test_pause_starts_with_no_signal_ignored(sandbox):
    """As a container runtime starts it; the spawner's Python ignores
    SIGPIPE and SIGXFSZ."""
    from podnet_testlib import ignores_no_signal
    assert ignores_no_signal(sandbox['sigign'])


def test_the_sandbox_is_a_named_netns_with_the_pod_hostname(sandbox):
    assert sandbox['identify'] == 'cni-test'
    assert sandbox['hostname'] == 'web-0'


def test_eth0_has_the_address_mac_mtu_and_default_route(sandbox):
    assert '2: eth0@if' in sandbox['pod'] and 'mtu 1450' in sandbox['pod']
    assert 'link/ether 02:00:00:00:00:07' in sandbox['pod']
    assert 'inet 10.42.7.9/24 brd 10.42.7.255 scope global eth0' in sandbox['pod']
    assert 'lo: <LOOPBACK,UP,LOWER_UP>' in sandbox['pod']
    assert sandbox['route'].startswith('default via 10.42.7.1 dev eth0')


def test_the_host_side_is_up_on_cni0_and_the_gateway_answers(sandbox):
    assert 'master cni0' in sandbox['host'] and 'state UP' in sandbox['host']
    assert 'mtu 1450' in sandbox['host']
    assert sandbox['ping'] == 0


def test_every_veth_end_has_one_queue(sandbox):
    # A queue per CPU would cost the kernel an expedited RCU grace period per
    # pod to cut the device back to the one queue a veth uses.
    eth0 = sandbox['pod'].split('2: eth0@if', 1)[1]
    for end in (eth0, sandbox['host'], sandbox['lab_veth']):
        assert 'numtxqueues 1 numrxqueues 1 ' in end
    assert sandbox['lab_veth'].count('numtxqueues 1 numrxqueues 1 ') == 2


def test_read_inside_sees_what_ip_shows(tmp_path):
    """The raw netlink CHECK of a sandbox, against a namespace made by ip."""
    script = r'''
import json, subprocess, sys
sys.path.insert(0, %r)
import podnet_testlib
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
for cmd in ('ip netns add cni-t', 'ip -n cni-t link add eth0 type veth peer name vethpeer',
            'ip -n cni-t link set eth0 address 02:00:00:00:00:09 mtu 1450 up',
            'ip -n cni-t addr add 10.42.7.9/24 dev eth0', 'ip -n cni-t route add default via 10.42.7.1'):
    subprocess.run(cmd.split(), check=True)
from ansible.module_utils.podnet.pods.sandbox import read_inside
print(json.dumps(read_inside('cni-t')))
''' % str(ROOT / 'tests')
    done = subprocess.run(['unshare', '--net', '--mount', '--propagation', 'private', sys.executable, '-c', script],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen['addresses'] == ['10.42.7.9/24'] and seen['gateways'] == ['10.42.7.1']
    assert seen['mtu'] == 1450 and seen['mac'] == '02:00:00:00:00:09' and seen['up']
    assert isinstance(seen['peer'], int)


HOLDERS = r'''
import json, os, subprocess, sys, time
sys.path.insert(0, %(tests)r)
import podnet_testlib
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
from ansible.module_utils.podnet.pods.sandbox import kill_holders
for name in ('cni-a', 'cni-b', 'cni-c'):
    subprocess.run(['ip', 'netns', 'add', name], check=True)
start = lambda *argv: subprocess.Popen(list(argv))
inside = [start('ip', 'netns', 'exec', 'cni-a', 'sleep', '100'),
          start('ip', 'netns', 'exec', 'cni-a', 'sh', '-c', 'sleep 100 & wait'),
          start('ip', 'netns', 'exec', 'cni-b', 'sleep', '100')]
spared = [start('ip', 'netns', 'exec', 'cni-c', 'sleep', '100'), start('sleep', '100')]
time.sleep(0.5)
kill_holders(['cni-a', 'cni-b', 'cni-gone'])
time.sleep(0.2)
print(json.dumps({'inside': [p.poll() for p in inside], 'spared': [p.poll() for p in spared]}))
for p in spared:
    p.kill()
'''


def test_every_process_in_a_sandbox_is_killed_by_its_namespace_not_its_record():
    """Regression (issue 21): a record whose pause and container PIDs were
    wrong (3: sshd, 1: the node's init) had its pod recreated, and the old
    pause and netexec kept running, untracked, past reset.yml. A sandbox's
    processes are now found by its namespace, and only they are killed."""
    done = subprocess.run(
        ['unshare', '--net', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
         sys.executable, '-c', HOLDERS % {'tests': str(ROOT / 'tests')}],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found == {'inside': [-9, -9, -9], 'spared': [None, None]}
