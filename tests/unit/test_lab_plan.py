"""Lab.plan(): what the provider does for each state of the running lab."""
import subprocess

import pytest
from ansible.module_utils.podnet.lab.reconciler import Lab, LabPaths
from samples import parse_with


def make_lab(tmp_path, state='present'):
    paths = LabPaths(str(tmp_path), 'lab', '/init', '/python', '/var/lib/podnet')
    return Lab(parse_with(), paths, run=None, state=state)


def current_with(lab, broken=(), absent=(), extra=None):
    hosts = {}
    for pid, host in enumerate(lab.hosts, start=100):
        problems = ['not running'] if host in absent else (['eth0 lacks x'] if host in broken else [])
        hosts[host] = {'pid': None if host in absent else pid, 'problems': problems}
    return {'hosts': hosts, 'extra': extra or {}, 'bridge': [], 'identity': [], 'root_links': [],
            'cgroups': []}


def test_healthy_lab_needs_nothing(tmp_path):
    lab = make_lab(tmp_path)
    assert lab.plan(current_with(lab)) == []


def test_only_the_broken_node_is_recreated(tmp_path):
    lab = make_lab(tmp_path)
    actions = lab.plan(current_with(lab, absent=['node2']))
    assert actions == [('create', 'node2', 'not running')]


def test_a_new_fabric_recreates_every_host_behind_it(tmp_path):
    lab = make_lab(tmp_path)
    actions = lab.plan(current_with(lab, broken=['fabric']))
    assert [a[1] for a in actions] == ['fabric', 'outside', 'node1', 'node2']
    assert actions[2][2] == 'its underlay goes with the fabric'


def test_a_host_dropped_from_the_inventory_is_destroyed(tmp_path):
    lab = make_lab(tmp_path)
    actions = lab.plan(current_with(lab, extra={'node9': 999}))
    assert actions == [('destroy', 'node9', 'not in the inventory')]


@pytest.mark.parametrize('absent', [[], ['node1']])
def test_absent_destroys_running_hosts_and_files(tmp_path, absent):
    lab = make_lab(tmp_path)
    (tmp_path / 'lab').mkdir()
    current = current_with(lab, absent=absent)
    current['root_links'] = ['pnlab-mgmt', 'pnlab-node2']
    actions = make_lab(tmp_path, 'absent').plan(current)
    destroyed = [t for v, t, _ in actions if v == 'destroy']
    assert destroyed == [h for h in lab.hosts if h not in absent]
    assert ('delete_links', 'pnlab-mgmt pnlab-node2', 'lab_state=absent') in actions
    assert actions[-1][0] == 'remove_files'
    assert not [a for a in actions if a[0] == 'remove_cgroups']


def test_absent_removes_the_lab_s_cgroups_whatever_runs(tmp_path):
    lab = make_lab(tmp_path)
    current = current_with(lab, absent=lab.hosts)
    current['cgroups'] = ['/sys/fs/cgroup/memory/podnet/lab']
    assert make_lab(tmp_path, 'absent').plan(current) == [
        ('remove_cgroups', '/sys/fs/cgroup/memory/podnet/lab', 'lab_state=absent')]


def test_an_sshd_configuration_an_older_podnet_wrote_is_out_of_date(tmp_path):
    from ansible.module_utils.podnet.lab import ssh

    def run(argv):
        done = subprocess.run(argv, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    ssh_dir = str(tmp_path / 'ssh')
    assert 'missing sshd_config' in ssh.plan_identity(ssh_dir)
    assert 'sshd_config' in ssh.ensure_identity(run, ssh_dir)
    assert ssh.plan_identity(ssh_dir) == [] and ssh.ensure_identity(run, ssh_dir) == []
    config = tmp_path / 'ssh' / 'sshd_config'
    config.write_text(config.read_text().replace('SetEnv HOME=%s\n' % ssh.NODE_HOME, ''))
    assert ssh.plan_identity(ssh_dir) == ['sshd_config out of date']
    assert ssh.ensure_identity(run, ssh_dir) == ['sshd_config']
    assert 'SetEnv HOME=/run/podnet/home' in config.read_text()


def test_a_process_started_in_a_node_joins_the_node_s_cgroups_from_outside_first(tmp_path):
    """Regression: sshd (and so every module run and pod) stayed in the
    provider's cgroup; under cgroup v2's nsdelegate nothing inside the node
    can then move into the node's cgroups, and no pod could start."""
    from ansible.module_utils.podnet.kernel import cgroups
    from ansible.module_utils.podnet.lab.host import LabHost
    entries = [{'dir': str(tmp_path / 'memory'), 'type': 'cgroup'},
               {'dir': str(tmp_path / 'unified'), 'type': 'cgroup2'}]
    folders = cgroups.process_folders(entries)
    assert folders == [str(tmp_path / 'memory'), str(tmp_path / 'unified' / 'init.scope')]
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    ran = []

    def run(argv):
        ran.append(argv)
        command = argv[:argv.index('nsenter')] + ['sh', '-c', 'echo $$ > %s' % (tmp_path / 'ran')]
        done = subprocess.run(command, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    LabHost('lab', 'node1', pid=4242).enter(run, ['sshd'], folders)
    assert ran[0][-6:] == ['nsenter', '--target', '4242', '--all', '--', 'sshd']
    pid = (tmp_path / 'ran').read_text()
    assert [(tmp_path / f / 'cgroup.procs').read_text() for f in folders] == [pid, pid]


def test_each_node_binds_its_state_and_private_folders_from_the_run_folder(tmp_path):
    paths = LabPaths(str(tmp_path), 'lab', '/init', '/python', '/var/lib/podnet',
                     private_dirs=['/etc/cni/net.d', '/var/lib/containers'])
    run = tmp_path / 'lab'
    assert paths.node_binds('node1') == [(str(run / 'state' / 'node1'), '/var/lib/podnet'),
                                         (str(run / 'private' / 'node1' / 'etc/cni/net.d'), '/etc/cni/net.d'),
                                         (str(run / 'private' / 'node1' / 'var/lib/containers'),
                                          '/var/lib/containers')]


def test_the_init_reads_every_bind_then_cgroups_and_server():
    import importlib.machinery
    import importlib.util
    from podnet_testlib import ROOT
    loader = importlib.machinery.SourceFileLoader('podnet_lab_init',
                                                  str(ROOT / 'roles' / 'lab' / 'files' / 'podnet-lab-init'))
    init = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(init)
    argv = ['init', 'lab', 'node1', '--bind', '/a', '/var/lib/podnet', '--bind', '/b', '/etc/cni/net.d',
            '--serve', 'server', '-v']
    assert init.parse(argv) == ('node1', [('/a', '/var/lib/podnet'), ('/b', '/etc/cni/net.d')], [], ['server', '-v'])
