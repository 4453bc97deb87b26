"""What a container sees and may do, for real, inside a throwaway node (new
network, mount and PID namespaces, private /run): the container runtime's
default capabilities, a read-only view of the system folders and nothing
else of the node, writable scratch folders; and /run/netns mounted once.
Needs root; skipped with the reason otherwise."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.pods.spawner import TIMED_OUT

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'),
                                reason='needs root and unshare to make a throwaway node')

PROBE = ('grep CapEff /proc/self/status; cat /srv/secret; ls %(root)s/.lab; cat %(shown)s/shown;'
         'touch /usr/podnet-probe && echo usr-writable; echo x > /tmp/f && echo tmp-ok;'
         'ls /var/lib; hostname;'
         'echo 1 > /proc/sys/net/ipv4/ip_forward || echo proc-sys-read-only;'
         '[ -e /proc/sysrq-trigger ] || echo no-sysrq; cat /proc/sysrq-trigger && echo sysrq-masked;'
         'mknod /dev/podnet-null c 1 3 && echo x > /dev/podnet-null && echo device-opened;'
         'echo x > /dev/shm/f && stat -c shm-%%a /dev/shm; stat -f -c "shm-size-%%b-%%S" /dev/shm;'
         'stat -f -c tmp-%%T /tmp; echo kept > /tmp/mark; grep Seccomp: /proc/self/status;'
         'unshare -U -r true 2>/dev/null && echo userns-made || echo userns-refused;'
         'grep SigIgn /proc/self/status; [ -z "$(ls -A /sys/firmware)" ] && echo firmware-masked;'
         'cat /etc/resolv.conf /etc/hosts /var/lib/podnet-dns/records.json;'
         'echo x >> /etc/resolv.conf || echo resolv-read-only; touch /var/lib/podnet-dns/new || echo zone-read-only;'
         'echo done')

SCRIPT = r'''
import json, os, subprocess, sys, time
sys.path.insert(0, %(tests)r)
import podnet_testlib
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)  # nothing here touches the real /run
os.makedirs('/run/netns')  # a /run/netns mount the node's own /run hides, as on a lab node
subprocess.run(['mount', '--bind', '/run/netns', '/run/netns'], check=True)
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/srv'], check=True)
open('/srv/secret', 'w').write('the lab key\n')
os.makedirs('/srv/pod')
os.makedirs('/srv/zone')
open('/srv/pod/resolv.conf', 'w').write('nameserver 10.43.0.10\n')
open('/srv/pod/hosts', 'w').write('10.42.1.6\tweb-0.web.shop.svc.cluster.local\tweb-0\n')
open('/srv/zone/records.json', 'w').write('{"the": "zone"}\n')
binds = [['/srv/pod/resolv.conf', '/etc/resolv.conf'], ['/srv/pod/hosts', '/etc/hosts'],
         ['/srv/zone', '/var/lib/podnet-dns']]
shown = %(shown)r  # a view path under /tmp, as a clone of the project may be
os.makedirs(shown, exist_ok=True)
open(shown + '/shown', 'w').write('the pods python\n')
from ansible.module_utils.podnet.kernel import caps, cgroups
from ansible.module_utils.podnet.pods.sandbox import SpawnerClient, ensure_netns_dir
hidden = {l.split()[0] for l in open('/proc/self/mountinfo') if l.split()[4] == '/run/netns'}
for _ in range(3):
    ensure_netns_dir()
mounts = [l for l in open('/proc/self/mountinfo') if l.split()[4] == '/run/netns'
          and l.split()[0] not in hidden]
namespaces = lambda pid: {ns: os.readlink('/proc/%%d/ns/%%s' %% (pid, ns))
                          for ns in ('net', 'uts', 'ipc', 'mnt', 'pid', 'pid_for_children')}
spawn = SpawnerClient()
pause = spawn.request('t', op='sandbox', netns='/run/netns/cni-test', hostname='web-0')
results = {'netns_mounts': len(mounts)}
for name, keep in (('default', sorted(caps.NUMBERS[c] for c in caps.RUNTIME_DEFAULT)),
                   ('privileged', sorted(caps.NUMBERS.values()))):
    log = '/run/%%s.log' %% name
    spawn.request('c', op='container', netns='/run/netns/cni-test', pause=pause.pid,
                  argv=['/bin/sh', '-c', %(probe)r], env={'PATH': '/usr/bin:/bin'}, cwd='/',
                  log=log, caps=keep, view=[shown], scratch=%(scratch)r + name,
                  seccomp=name == 'default', binds=binds)
    for _ in range(100):
        if os.path.exists(log) and 'done' in open(log).read():
            break
        time.sleep(0.05)
    results[name] = open(log).read()
    results[name + '_spawner_ns'] = namespaces(spawn._proc.pid)  # the spawner after this container
container = spawn.request('c', op='container', netns='/run/netns/cni-test', pause=pause.pid,
                          argv=['sleep', '60'], env={'PATH': '/usr/bin:/bin'}, log='/run/sleep.log',
                          caps=[], view=[], scratch=%(scratch)r + 'sleep')
results['container_ns'] = namespaces(container.pid)
results['container_nspid'] = [l.split()[1:] for l in open('/proc/%%d/status' %% container.pid)
                              if l.startswith('NSpid')][0]
results['sandbox_ns'] = namespaces(pause.pid)
gone = subprocess.Popen(['true'])
gone.wait()  # a pause that died: the spawner joins the pod's network, then cannot join its UTS
for name, pause_pid, argv, log in (('failed', pause.pid, ['/no/such/program'], '/run/none.log'),
                                   ('no_argv', pause.pid, [], '/run/none.log'),
                                   ('no_argv_no_log', pause.pid, [], '/no/such/folder/log'),
                                   ('pause_gone', gone.pid, ['sleep', '60'], '/run/none.log')):
    try:
        spawn.request('c', op='container', netns='/run/netns/cni-test', pause=pause_pid,
                      argv=argv, env={}, log=log, caps=[], view=[], scratch=%(scratch)r + name)
        results[name] = 'started'
    except Exception as exc:
        results[name] = str(exc)
    results[name + '_spawner_ns'] = namespaces(spawn._proc.pid)
memory = cgroups.read_hierarchies().get('memory')
if memory:  # a container over its memory limit while it sets itself up, before exec
    tight = os.path.join(memory.path, %(tight)r)
    os.makedirs(tight)
    limit = cgroups.limit_files(cgroups.Limits(memory=0), memory.version, 'memory')
    for name, text in limit.items():
        open(os.path.join(tight, name), 'w').write(text)
    try:
        spawn.request('c', op='container', netns='/run/netns/cni-test', pause=pause.pid, argv=['sleep', '60'],
                      env={}, log='/run/tight.log', caps=[], view=[], scratch=%(scratch)r + 'tight',
                      cgroups=[tight])
        results['tight'] = 'started'
    except Exception as exc:
        results['tight'] = str(exc)
    cgroups.kill_and_remove(tight)
for name, argv, timeout in (('init_done', ['sh', '-c', 'sleep 0.2; echo ran'], 5), ('init_failed', ['false'], 5),
                            ('init_hangs', ['sleep', '60'], 0.3)):
    begun = time.monotonic()
    proc, code = spawn.run('i', netns='/run/netns/cni-test', pause=pause.pid, argv=argv,
                           env={'PATH': '/usr/bin:/bin'}, log='/run/%%s.log' %% name, caps=[], view=[],
                           scratch=%(scratch)r + name, seccomp=True, timeout=timeout)
    results[name] = [code, proc.start > 0, round(time.monotonic() - begun, 1), open('/run/%%s.log' %% name).read(),
                     os.path.exists('/proc/%%d' %% proc.pid)]  # a zombie's folder is there until it is reaped
after = spawn.request('c', op='container', netns='/run/netns/cni-test', pause=pause.pid,
                      argv=['sleep', '60'], env={}, log='/run/after.log', caps=[], view=[],
                      scratch=%(scratch)r + 'after')
results['after_started'] = os.readlink('/proc/%%d/exe' %% after.pid)
results['spawner_children'] = sorted(
    open('/proc/%%d/comm' %% int(pid)).read().strip()
    for pid in open('/proc/%%d/task/%%d/children' %% (spawn._proc.pid, spawn._proc.pid)).read().split())
results['own_ns'] = namespaces(os.getpid())
results['scratch'] = {name: open(%(scratch)r + name + '/tmp/mark').read()
                      for name in ('default', 'privileged')}
results['scratch_modes'] = sorted('%%s %%o' %% (n, os.stat(%(scratch)r + 'default/' + n).st_mode & 0o7777)
                                  for n in os.listdir(%(scratch)r + 'default'))
spawn.close()
print(json.dumps(results))
'''


@pytest.fixture(scope='module')
def seen():
    shown = tempfile.mkdtemp(prefix='podnet-view-', dir='/tmp')
    scratch = tempfile.mkdtemp(prefix='podnet-scratch-', dir=ROOT)  # the project's disk, as a node's state
    probe = PROBE % {'root': ROOT, 'shown': shown}
    tight = 'podnet-unit-tight-%d' % os.getpid()
    try:
        done = subprocess.run(
            ['unshare', '--net', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private',
             sys.executable, '-c', SCRIPT % {'tests': str(ROOT / 'tests'), 'probe': probe, 'shown': shown,
                                             'scratch': scratch + '/', 'tight': tight}],
            capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(shown)
        shutil.rmtree(scratch)
        memory = cgroups.read_hierarchies().get('memory')
        if memory and os.path.isdir(os.path.join(memory.path, tight)):
            cgroups.kill_and_remove(os.path.join(memory.path, tight))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cap_mask(names):
    from ansible.module_utils.podnet.kernel import caps
    return sum(1 << caps.NUMBERS[n] for n in names)


def test_netns_folder_is_mounted_once_however_often_it_is_ensured(seen):
    """Regression: a bind mount on the same filesystem is no mount point to
    os.path.ismount, so every spawner start stacked one more (98,329 on a
    busy node, then ENOSPC); and a /run/netns mount hidden under the node's
    own /run is not the one in use."""
    assert seen['netns_mounts'] == 1


def test_a_container_keeps_the_runtime_default_capabilities_only(seen):
    from ansible.module_utils.podnet.kernel import caps
    line = [entry for entry in seen['default'].splitlines() if entry.startswith('CapEff')][0]
    assert int(line.split()[1], 16) == cap_mask(caps.RUNTIME_DEFAULT)
    assert not int(line.split()[1], 16) & cap_mask(['NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'])


def test_a_privileged_container_keeps_every_capability_the_node_has(seen):
    line = [entry for entry in seen['privileged'].splitlines() if entry.startswith('CapEff')][0]
    own = [line for line in open('/proc/self/status') if line.startswith('CapEff')][0]
    assert int(line.split()[1], 16) == int(own.split()[1], 16)


def test_a_container_sees_neither_the_node_state_nor_the_lab_keys(seen):
    out = seen['default']
    assert 'the lab key' not in out
    assert 'No such file or directory' in out  # /srv/secret and .lab are simply not there
    assert 'podnet' not in [line.strip() for line in out.splitlines()]  # no /var/lib/podnet


def test_system_folders_are_read_only_and_scratch_is_writable(seen):
    out = seen['default']
    assert 'usr-writable' not in out and 'Read-only file system' in out
    assert 'tmp-ok' in out


def test_the_pod_s_files_are_read_only_over_etc_and_a_mount_at_its_target(seen):
    """The pod's resolv.conf and hosts, and the cluster DNS pod's zone
    folder: seen where asked, never writable from inside."""
    out = seen['default']
    assert 'nameserver 10.43.0.10' in out and 'web-0.web.shop.svc.cluster.local' in out
    assert '{"the": "zone"}' in out
    assert 'resolv-read-only' in out and 'zone-read-only' in out


def test_the_container_has_the_pod_hostname(seen):
    assert 'web-0' in seen['default'].splitlines()


def test_a_view_path_under_tmp_is_seen_over_the_scratch_tmp(seen):
    """Regression: a clone of the project under /tmp (as CI makes) was
    hidden by the container's own /tmp: its venv was not there."""
    assert 'the pods python' in seen['default']


def test_the_kernel_knobs_are_read_only_and_sysrq_is_masked(seen):
    """A writable /proc/sys would let a pod (root of the machine's user
    namespace) set core_pattern or modprobe: the machine's root for its
    program. (Probed on the pod's own ip_forward, harmless if it passed.)"""
    assert 'proc-sys-read-only' in seen['default']
    assert 'sysrq-masked' in seen['default'] or 'no-sysrq' in seen['default']  # a kernel without SysRq
    # Regression (hostile re-run of issue 21): /sys/firmware and /proc/acpi
    # were visible, where runtimes hide them
    assert 'firmware-masked' in seen['default']


def test_a_device_node_a_container_makes_opens_nothing(seen):
    """Containers keep MKNOD (the runtime default): /dev is nodev, so a node
    for a disk would give nothing. (Probed with /dev/null's numbers.)"""
    out = seen['default']
    assert 'device-opened' not in out and 'Permission denied' in out


def test_dev_shm_is_a_shared_scratch_folder_of_64_mib(seen):
    """Regression (issue 21): /dev/shm, /tmp, /var/tmp and /run were tmpfs
    mounts of half the machine's memory each."""
    assert 'shm-1777' in seen['default']
    size = [line for line in seen['default'].splitlines() if line.startswith('shm-size-')][0].split('-')
    assert int(size[2]) * int(size[3]) == 64 << 20


def test_tmp_is_the_container_s_own_folder_on_disk(seen):
    """/tmp, /var/tmp and /run are binds of folders in the scratch folder the
    module gives (the pod's own, on the node's disk), one per container."""
    assert 'tmp-tmpfs' not in seen['default'] and 'tmp-' in seen['default']
    assert seen['scratch'] == {'default': 'kept\n', 'privileged': 'kept\n'}
    assert seen['scratch_modes'] == ['run 755', 'tmp 1777', 'var-tmp 1777']


def test_runtime_default_seccomp_refuses_a_user_namespace_unconfined_does_not(seen):
    """Regression (issue 21): `unshare -U -r` worked inside a pod."""
    assert 'Seccomp:\t2' in seen['default'] and 'userns-refused' in seen['default']
    assert 'Seccomp:\t0' in seen['privileged'] and 'userns-made' in seen['privileged']


def test_a_container_is_pid_1_of_its_own_pid_and_mount_namespaces_in_the_sandbox(seen):
    container, sandbox = seen['container_ns'], seen['sandbox_ns']
    assert seen['container_nspid'][-1] == '1'
    assert [container[ns] for ns in ('net', 'uts', 'ipc')] == [sandbox[ns] for ns in ('net', 'uts', 'ipc')]
    assert container['pid'] not in (sandbox['pid'], seen['own_ns']['pid'])
    assert container['mnt'] != seen['own_ns']['mnt']


def test_the_spawner_is_back_in_its_own_namespaces_after_each_container(seen):
    """The spawner enters a sandbox to fork each container (one fork, not
    two): it must come home, also when the container fails to start or the
    sandbox cannot be entered, or the next pod would be made inside the last."""
    assert 'no/such/program' in seen['failed']
    assert 'ns/uts' in seen['pause_gone']  # joined the pod's network, then failed
    for case in ('default', 'privileged', 'failed', 'no_argv', 'no_argv_no_log', 'pause_gone'):
        assert seen[case + '_spawner_ns'] == seen['own_ns'], case


def test_a_container_that_fails_before_exec_is_reported_and_the_spawner_serves_on(seen):
    """Regression: when reporting its own failure raised (no argv), the
    forked container went on as a second spawner: it answered the next
    requests itself, or the spawner reported a container started that never
    ran its program."""
    assert '(no program): ' in seen['no_argv']
    assert '(no program): ' in seen['no_argv_no_log']
    assert seen['after_started'].endswith('/sleep')
    assert not [c for c in seen['spawner_children'] if c.startswith('python')]  # no second spawner


def test_a_container_starts_with_no_signal_ignored(seen):
    """Regression: Python ignores SIGPIPE and SIGXFSZ, and exec keeps an
    ignored signal ignored: `yes | head -1` in a pod never ended by SIGPIPE."""
    from podnet_testlib import ignores_no_signal
    ignored = [line for line in seen['default'].splitlines() if line.startswith('SigIgn')][0]
    assert ignores_no_signal(ignored.split()[1])


def test_a_container_killed_before_exec_is_a_failure_not_a_start(seen):
    """Regression: the spawner took an empty pipe for an exec done; a child
    its memory limit killed while it set itself up was reported started."""
    if 'tight' not in seen:
        pytest.skip('this machine has no memory cgroup controller')
    assert seen['tight'] == 'c: killed by signal 9 before it could exec (over its memory limit?)'


def test_an_init_container_runs_to_its_end_and_gives_its_exit_code(seen):
    """The spawner's `run`: it forks the init container as any container
    and waits for it (it alone can reap it), killing it past its timeout."""
    code, started, _, said, unreaped = seen['init_done']
    assert (code, started, said, unreaped) == (0, True, 'ran\n', False)
    assert seen['init_failed'][0] == 1 and not seen['init_failed'][4]
    code, _, seconds, _, unreaped = seen['init_hangs']
    assert code == TIMED_OUT and seconds < 2 and not unreaped
