"""cgroups.py on fake trees: which hierarchy holds each controller, kubelet's
layout and limits in v1 and v2 files, and removal of what runs there. The
lab tests (tests/integration/test_pod_limits.py) check the kernel's side."""
import os
import subprocess

import pytest
from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.kernel.cgroups import Hierarchy, Limits

HYBRID = '''\
24 23 0:21 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
25 24 0:22 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
28 24 0:25 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
29 24 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
'''


def test_v1_controllers_are_found_beside_an_empty_unified_tree(tmp_path):
    (tmp_path / 'mountinfo').write_text(HYBRID)
    found = cgroups.read_hierarchies(str(tmp_path / 'mountinfo'))
    assert found == {'memory': Hierarchy('/sys/fs/cgroup/memory', 1, 'memory'),
                     'cpu': Hierarchy('/sys/fs/cgroup/cpu,cpuacct', 1, 'cpu,cpuacct'),
                     'pids': Hierarchy('/sys/fs/cgroup/pids', 1, 'pids')}


def test_a_v2_machine_has_every_controller_in_one_tree(tmp_path):
    root = tmp_path / 'cg'
    root.mkdir()
    (root / 'cgroup.controllers').write_text('cpuset cpu io memory hugetlb pids rdma misc\n')
    (tmp_path / 'mountinfo').write_text(
        '25 24 0:22 / %s rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n' % root)
    found = cgroups.read_hierarchies(str(tmp_path / 'mountinfo'))
    assert set(found) == {'memory', 'cpu', 'pids'}
    assert set(found.values()) == {Hierarchy(str(root), 2, '')}


def test_a_machine_without_cgroups_has_none(tmp_path):
    (tmp_path / 'mountinfo').write_text('22 1 0:5 / /proc rw - proc proc rw\n')
    assert cgroups.read_hierarchies(str(tmp_path / 'mountinfo')) == {}


@pytest.mark.parametrize('qos, parent', [('Guaranteed', 'kubepods/pod1f-2a'),
                                         ('Burstable', 'kubepods/burstable/pod1f-2a'),
                                         ('BestEffort', 'kubepods/besteffort/pod1f-2a')])
def test_pods_go_where_kubelet_puts_them(qos, parent):
    assert cgroups.pod_path(qos, '1f-2a') == parent
    assert cgroups.PodCgroups({'pids': Hierarchy('/cg', 1, 'pids')}, parent).dirs() == ['/cg/' + parent]


def test_pod_limits_are_sums_only_when_every_container_has_one():
    limited = {'resources': {'memory_limit': 64 << 20, 'cpu_limit': 500, 'cpu_request': 250}}
    free = {'resources': {'cpu_request': 100}}
    both = cgroups.pod_limits([limited, limited], 1024)
    assert (both.memory, both.cpu_millis, both.cpu_request, both.pids) == (128 << 20, 1000, 500, 1024)
    mixed = cgroups.pod_limits([limited, free], 1024)
    assert (mixed.memory, mixed.cpu_millis, mixed.cpu_request) == (None, None, 350)
    # Regression: a pod of no containers (a sandbox alone) got a memory limit
    # of 0, the sum of nothing, and the kernel refused its pause a cgroup.
    empty = cgroups.pod_limits([], 1024)
    assert (empty.memory, empty.cpu_millis, empty.cpu_request) == (None, None, None)


@pytest.mark.parametrize('version, controller, limits, files', [
    # no swap beyond the limit (kubelet's NoSwap)
    (1, 'memory', Limits(memory=67108864), {'memory.limit_in_bytes': '67108864',
                                            'memory.memsw.limit_in_bytes': '67108864'}),
    (2, 'memory', Limits(memory=67108864), {'memory.max': '67108864', 'memory.swap.max': '0'}),
    (1, 'memory', Limits(), {}),
    (1, 'cpu', Limits(cpu_millis=500, cpu_request=250),
     {'cpu.shares': '256', 'cpu.cfs_quota_us': '50000'}),
    (2, 'cpu', Limits(cpu_millis=500, cpu_request=250), {'cpu.weight': '10', 'cpu.max': '50000 100000'}),
    (1, 'cpu', Limits(cpu_millis=1), {'cpu.shares': '2', 'cpu.cfs_quota_us': '1000'}),  # the kernel's floor
    (1, 'cpu', Limits(cpu_request=0), {'cpu.shares': '2'}),
    # Regression: with no request nothing was written, and the container got
    # the kernel's default weight, as much as a 1-CPU request.
    (2, 'cpu', Limits(), {'cpu.weight': '1'}),
    (1, 'pids', Limits(pids=1024), {'pids.max': '1024'}),
    (2, 'pids', Limits(pids=-1), {'pids.max': 'max'}),  # kubelet's -1: no limit (the kernel refuses -1)
    (2, 'pids', Limits(), {}),
])
def test_limits_are_written_in_each_version_s_own_files(version, controller, limits, files):
    """kubelet's conversions: shares = millicores * 1024 / 1000 (at least 2),
    weight = 1 + (shares - 2) * 9999 / 262142, quota over a 100 ms period."""
    assert cgroups.limit_files(limits, version, controller) == files


def fake_v2(tmp_path):
    root = tmp_path / 'cg'
    root.mkdir()
    (root / 'cgroup.subtree_control').write_text('memory\n')
    return root, {c: Hierarchy(str(root), 2, '') for c in cgroups.CONTROLLERS}


def test_v2_controllers_are_enabled_on_every_folder_down_to_the_pod(tmp_path, monkeypatch):
    """A folder has no cgroup.subtree_control until the kernel makes it: the
    fake makes each as mkdir would."""
    root, hierarchies = fake_v2(tmp_path)
    real_makedirs = os.makedirs

    def makedirs(path, *args, **kwargs):
        real_makedirs(path, *args, **kwargs)
        control = os.path.join(path, 'cgroup.subtree_control')
        if not os.path.exists(control):
            open(control, 'w').close()
    monkeypatch.setattr(os, 'makedirs', makedirs)
    monkeypatch.setattr(cgroups, '_fresh', lambda folder: real_makedirs(folder, exist_ok=True))
    pod = cgroups.PodCgroups(hierarchies, cgroups.pod_path('Burstable', 'a1'))
    pod.create(Limits(pids=100), {'web': Limits(memory=1 << 26)})
    assert (root / 'cgroup.subtree_control').read_text() == '+cpu +pids'  # memory was on
    for folder in ('kubepods', 'kubepods/burstable', 'kubepods/burstable/poda1'):
        assert (root / folder / 'cgroup.subtree_control').read_text() == '+cpu +memory +pids'
    pod_dir = root / 'kubepods/burstable/poda1'
    assert (pod_dir / 'pids.max').read_text() == '100'
    assert (pod_dir / 'web' / 'memory.max').read_text() == str(1 << 26)
    assert (pod_dir / 'web' / 'memory.oom.group').read_text() == '1'  # kubelet: the whole container goes


def test_a_pod_without_a_cgroup_path_never_names_the_node_s_own(tmp_path):
    """Regression guard: a record an older podnet wrote has no cgroup; its
    removal must not take the hierarchy's root (every process of the node)."""
    _, hierarchies = fake_v2(tmp_path)
    for relative in ('', '/', '..', 'system.slice', 'kubepods', 'kubepods/../..', 'kubepods/pod1/../..',
                     'kubepods/besteffort/pod1/web'):
        pod = cgroups.PodCgroups(hierarchies, relative)
        assert pod.dirs() == [] and not pod.exists() and pod.oom_kills('web') == 0
        pod.remove()
    assert (tmp_path / 'cg' / 'cgroup.subtree_control').exists()


@pytest.mark.parametrize('version, name, text', [
    (1, 'memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n'),
    (2, 'memory.events', 'low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n')])
def test_oom_kills_are_read_per_container(tmp_path, version, name, text):
    hierarchies = {'memory': Hierarchy(str(tmp_path), version, 'memory' if version == 1 else '')}
    pod = cgroups.PodCgroups(hierarchies, 'kubepods/poda1')
    (tmp_path / 'kubepods/poda1/web').mkdir(parents=True)
    assert pod.oom_kills('web') == 0
    (tmp_path / 'kubepods/poda1/web' / name).write_text(text)
    assert pod.oom_kills('web') == int(text.split()[-1])


def test_pod_folders_are_found_under_each_qos_parent(tmp_path):
    hierarchies = {'pids': Hierarchy(str(tmp_path), 1, 'pids')}
    for folder in ('kubepods/poda', 'kubepods/burstable/podb', 'kubepods/besteffort/podc',
                   'kubepods/besteffort/not-a-pod', 'kubepods/besteffort/pod..'):
        (tmp_path / folder).mkdir(parents=True)
    assert cgroups.pod_folders(hierarchies) == {
        'a': 'kubepods/poda', 'b': 'kubepods/burstable/podb', 'c': 'kubepods/besteffort/podc'}


def test_a_lab_node_joins_one_folder_per_hierarchy_named_by_lab_and_host():
    hierarchies = {'memory': Hierarchy('/m', 1, 'memory'), 'cpu': Hierarchy('/c', 1, 'cpu,cpuacct'),
                   'pids': Hierarchy('/u', 2, '')}
    assert cgroups.node_cgroups('lab', 'node1', hierarchies) == [
        {'dir': '/c/podnet/lab/node1', 'mount': '/c', 'type': 'cgroup', 'options': 'cpu,cpuacct',
         'controllers': ['cpu']},
        {'dir': '/m/podnet/lab/node1', 'mount': '/m', 'type': 'cgroup', 'options': 'memory',
         'controllers': ['memory']},
        {'dir': '/u/podnet/lab/node1', 'mount': '/u', 'type': 'cgroup2', 'options': '',
         'controllers': ['pids']}]


@pytest.fixture
def pids_hierarchy():
    """A real cgroup of the machine's pids controller, removed after."""
    found = cgroups.read_hierarchies().get('pids')
    if found is None or os.geteuid() != 0:
        pytest.skip('needs root and a pids controller')
    folder = os.path.join(found.path, 'podnet-unit-%d' % os.getpid())
    yield folder
    if os.path.isdir(folder):
        cgroups.kill_and_remove(folder)


def test_remove_tree_kills_what_runs_in_it_and_removes_every_folder(pids_hierarchy):
    os.makedirs(os.path.join(pids_hierarchy, 'pod', 'web'))
    sleeper = subprocess.Popen(['sleep', '60'])
    try:
        with open(os.path.join(pids_hierarchy, 'pod', 'web', 'cgroup.procs'), 'w') as f:
            f.write(str(sleeper.pid))
        assert cgroups.procs(pids_hierarchy) == [sleeper.pid]
        cgroups.kill_and_remove(pids_hierarchy, wait=5)
        assert sleeper.wait(timeout=5) == -9
        assert not os.path.exists(pids_hierarchy)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_value_the_kernel_refuses_names_the_file(tmp_path):
    """Regression (hostile re-run of issue 21): a refused cgroup write said
    `[Errno 22] Invalid argument`, naming neither file nor value."""
    from ansible.module_utils.podnet.kernel import cgroups
    with pytest.raises(OSError) as refused:
        cgroups._write(str(tmp_path / 'missing' / 'cpu.cfs_quota_us'), '1000')
    assert 'writing %r to %s' % ('1000', tmp_path / 'missing' / 'cpu.cfs_quota_us') in str(refused.value)
