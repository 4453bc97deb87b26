"""What a pod may take (issue 21): a cgroup per pod and per container as
kubelet lays them out, with the manifest's memory and CPU limits and a pids
limit; a container the OOM killer ends is restarted by its restart policy
and named OOMKilled; the RuntimeDefault seccomp profile (no user namespace)
unless a container asks for Unconfined; /tmp on the node's disk, /dev/shm of
64 MiB; and whatever a removed pod left running is killed with its cgroups.
And who a container is (issue 23): the user, group and supplementary groups
its securityContext names, no capabilities for a user other than root, and
no_new_privs when it does not allow privilege escalation."""
import json
import os
import re

import pytest
from ansible.module_utils.podnet.kernel import cgroups
from integration.conftest import playbook, pod_records, running_lab

HIERARCHIES = cgroups.read_hierarchies()
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(set(HIERARCHIES) != set(cgroups.CONTROLLERS),
                                 reason='the machine lacks a memory, cpu or pids cgroup controller')]

STATE = '/var/lib/podnet'
PROBE = ('grep Seccomp: /proc/self/status; '
         'unshare -U -r true 2>/dev/null && echo userns-made || echo userns-refused; '
         'stat -f -c tmp-%T /tmp; stat -f -c "shm-%T-%b-%S" /dev/shm; '
         'echo kept > /tmp/mark; cat /proc/self/cgroup; '
         'echo limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null); '
         'touch /sys/fs/cgroup/x 2>/dev/null || echo cgroupfs-read-only; echo probed; sleep 3600')
# Children that exit at once and are never reaped: zombies, which count
# against the pods limit as they do on a real node.
ZOMBIES = ('import os, time\n'
           'made = 0\n'
           'try:\n'
           '    for _ in range(1500):\n'
           '        if os.fork() == 0:\n'
           '            os._exit(0)\n'
           '        made += 1\n'
           'except OSError as exc:\n'
           '    print("fork refused", exc.errno)\n'
           'print("forked", made, flush=True)\n'
           'time.sleep(3600)\n')
HOG = 'import time; time.sleep(0.5); hog = bytearray(256 << 20); time.sleep(3600)'
WHO = ('id; grep -E "^(CapEff|NoNewPrivs):" /proc/self/status; '
       'touch /tmp/mine && echo tmp-writable; touch /root-owned 2>/dev/null || echo root-read-only; '
       'echo who-probed; sleep 3600')


def pod(name, containers, **spec):
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'namespace': 'default'},
            'spec': dict({'nodeName': 'node2', 'containers': containers}, **spec)}


def container(name, command, **extra):
    return dict({'name': name, 'image': 'busybox', 'command': command}, **extra)


LIMITED = {'limits': {'memory': '64Mi', 'cpu': '250m'}}
PODS = [
    pod('limits', [container('probe', ['sh', '-c', PROBE], resources=LIMITED),
                   container('free', ['sh', '-c', PROBE],
                             securityContext={'seccompProfile': {'type': 'Unconfined'}})]),
    pod('hog', [container('hog', ['python3', '-c', HOG], resources={'limits': {'memory': '32Mi'}})],
        restartPolicy='OnFailure'),
    pod('zombies', [container('zombies', ['python3', '-c', ZOMBIES])]),
    pod('who', [container('who', ['sh', '-c', WHO],
                          securityContext={'runAsUser': 1000, 'allowPrivilegeEscalation': False})],
        securityContext={'runAsGroup': 3000, 'fsGroup': 2000, 'supplementalGroups': [4000]}),
]


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab')


def converge(lab, *files, check=True, mode=()):
    manifests = ['manifests/seed'] + [str(f) for f in files]
    return playbook(lab.inventory, 'playbooks/site.yml', *mode, '-e',
                    json.dumps({'podnet_manifests': manifests}), check=check)


@pytest.fixture(scope='module')
def limited(lab, tmp_path_factory):
    """The three pods above on node2, beside the seed's; removed after."""
    extra = tmp_path_factory.mktemp('limits') / 'limits.yaml'
    extra.write_text('\n---\n'.join(json.dumps(p) for p in PODS))
    node2 = lab.hosts['node2']
    converge(lab)
    seed = {r['name']: r for r in pod_records(node2)}
    converge(lab, extra)
    records = {r['name']: r for r in pod_records(node2)}
    node2.run("sh -c 'for i in $(seq 100); do grep -q probed %s/pods/default_limits/free.log "
              "&& grep -q forked %s/pods/default_zombies/zombies.log "
              "&& grep -q who-probed %s/pods/default_who/who.log && break; sleep 0.1; done'",
              STATE, STATE, STATE)
    yield lab, node2, extra, seed, records
    converge(lab)


def log(host, pod_name, container_name):
    return host.check_output('cat %s/pods/default_%s/%s.log', STATE, pod_name, container_name)


def cgroup_file(host, controller, record, leaf, name):
    """A file of a pod's cgroup as its node sees it (a lab node mounts the
    machine's hierarchies at the same places)."""
    path = os.path.join(HIERARCHIES[controller].path, record['cgroup'], leaf, name)
    return host.check_output('cat %s', path).strip()


def limit_file(controller, **limits):
    """(file, text) that set one limit in this machine's cgroup version."""
    files = cgroups.limit_files(cgroups.Limits(**limits), HIERARCHIES[controller].version, controller)
    return [(n, t) for n, t in files.items() if n != 'cpu.shares' and n != 'cpu.weight'][0]


def test_containers_run_under_runtime_default_seccomp_unless_unconfined(limited):
    _, node2, _, _, _ = limited
    confined, free = log(node2, 'limits', 'probe'), log(node2, 'limits', 'free')
    assert 'Seccomp:\t2' in confined and 'userns-refused' in confined
    assert 'Seccomp:\t0' in free and 'userns-made' in free


def test_a_container_runs_as_the_user_and_groups_its_security_context_names(limited):
    """Regression (issue 23): runAsUser other than 0 and fsGroup were refused."""
    _, node2, _, _, _ = limited
    out = log(node2, 'who', 'who')
    ids = dict(part.split('=', 1) for part in re.sub(r'\([^)]*\)', '', out.splitlines()[0]).split())
    assert (ids['uid'], ids['gid']) == ('1000', '3000') and {'2000', '4000'} <= set(ids['groups'].split(',')), out
    status = dict(line.split(':', 1) for line in out.splitlines() if line.startswith(('CapEff', 'NoNewPrivs')))
    assert status['CapEff'].strip() == '0' * 16 and status['NoNewPrivs'].strip() == '1', out
    assert 'tmp-writable' in out and 'root-read-only' in out


def test_tmp_is_on_the_pod_s_disk_folder_and_dev_shm_is_64_mib(limited):
    _, node2, _, _, _ = limited
    out = log(node2, 'limits', 'probe')
    assert 'tmp-tmpfs' not in out and 'tmp-' in out
    shm = [line for line in out.splitlines() if line.startswith('shm-')][0].split('-')
    assert shm[1] == 'tmpfs' and int(shm[2]) * int(shm[3]) == 64 << 20
    assert node2.check_output('cat %s/pods/default_limits/probe/tmp/mark', STATE) == 'kept'


def test_each_container_has_its_cgroup_below_its_pod_s_with_its_limits(limited):
    _, node2, _, _, records = limited
    record = records['limits']
    assert record['cgroup'] == 'kubepods/burstable/pod' + record['uid']  # one container has no limits
    seen = log(node2, 'limits', 'probe')
    # inside, as with containerd: its own cgroup is the root of what it sees,
    # read-only, and holds its own limit (what the JVM or Go size themselves by)
    assert [line for line in seen.splitlines() if ':memory:' in line or line.startswith('0::')] \
        and all(line.endswith(':/') for line in seen.splitlines() if ':memory:' in line or line.startswith('0::'))
    assert 'limit %d' % (64 << 20) in seen and 'cgroupfs-read-only' in seen
    for controller, limits in (('memory', {'memory': 64 << 20}), ('cpu', {'cpu_millis': 250})):
        name, text = limit_file(controller, **limits)
        assert cgroup_file(node2, controller, record, 'probe', name) == text
    assert cgroup_file(node2, 'pids', record, '', 'pids.max') == '1024'
    pause = cgroup_file(node2, 'pids', record, '_pause', 'cgroup.procs')
    assert pause == str(record['pause']['pid'])


def test_a_pod_s_processes_zombies_included_stop_at_its_pids_limit(limited):
    _, node2, _, _, records = limited
    out = log(node2, 'zombies', 'zombies')
    assert 'fork refused 11' in out  # EAGAIN, as fork(2) says for a pids limit
    forked = int(out.split('forked ')[1].split()[0])
    assert 1000 < forked < 1024  # the pause process and the parent count too
    assert cgroup_file(node2, 'pids', records['zombies'], '', 'pids.current') == '1024'


def test_a_container_over_its_memory_limit_is_oom_killed_and_restarted(limited):
    lab, node2, extra, seed, records = limited
    hog = records['hog']
    node2.run("sh -c 'for i in $(seq 100); do kill -0 %s 2>/dev/null || break; sleep 0.1; done'",
              str(hog['containers']['hog']['pid']))
    plan = converge(lab, extra, mode=('--check', '--diff'))
    assert 'restart default/hog: container hog exited (OOMKilled)' in plan.stdout
    now = {r['name']: r for r in pod_records(node2)}
    for name, record in seed.items():  # the other pods did not notice
        assert now[name]['containers'] == record['containers'], name


def test_a_removed_pod_leaves_no_process_and_no_cgroup(limited):
    lab, node2, _, _, records = limited
    pids_folder = os.path.join(HIERARCHIES['pids'].path, records['zombies']['cgroup'])
    converge(lab)
    assert node2.run('test -e %s', pids_folder).rc != 0
    parents = node2.check_output("sh -c 'ps -eo comm= | grep -c python3 || true'")
    assert int(parents) < 10  # not the 1,000 zombies' parent and its children
    assert not [r for r in pod_records(node2) if r['name'] in ('limits', 'hog', 'zombies')]

