"""State absent (playbooks/reset.yml) plans from what a node holds, with no
cluster plan: pods, backend, policy and network tables, the state
directory; a reset takes the node lock only where a run left one."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

from ansible.module_utils.podnet.core.statefile import node_lock
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.node import backend, nodestate
from ansible.module_utils.podnet.pods import srcguard
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods.planner import NodeState, Planner
from ansible.module_utils.podnet.pods.reconciler import PodsReconciler
from ansible.module_utils.podnet.pods.records import RecordStore
from samples import HEALTH, node_state, pod, state

ROOT = Path(__file__).resolve().parents[2]


def steps(actions):
    return [(a.verb, a.target) for a in actions]


def library(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / 'library' / (name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- pods ---------------------------------------------------------------------
def no_table(argv):
    """nft, when the table it is asked for is not there."""
    return 1, '', 'Error: No such file or directory'


def test_pods_absent_needs_no_pod_cidr_and_removes_everything(tmp_path):
    node = Planner(None, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))
    web = state(pod('web'))
    current = node_state({'default/web': web}, sandboxes=[web['netns'], 'cni-left-by-a-crash'],
                         stale=[str(tmp_path / 'pods'), str(tmp_path / 'ipam')])
    assert steps(node.plan_absent(current)) == [
        ('delete', 'default/web'), ('forget_netns', 'cni-left-by-a-crash'),
        ('remove_folder', str(tmp_path / 'pods')), ('remove_folder', str(tmp_path / 'ipam')),
        ('delete_table', srcguard.TABLE)]


@pytest.mark.parametrize('kubelet_pod', [False, True])
def test_pods_absent_sweeps_the_pod_cgroups_podnet_started_and_never_a_kubelet_s(tmp_path, kubelet_pod):
    """A pod cgroup a crash left (no record; its IPAM file names it, written
    before the cgroup) is swept like its sandbox, then kubepods goes. A pod
    cgroup no podnet file names is another runtime's (a kubelet with the
    cgroupfs driver on the same VM): neither it nor kubepods is touched."""
    from ansible.module_utils.podnet.kernel.cgroups import Hierarchy
    hierarchies = {'memory': Hierarchy(str(tmp_path / 'memory'), 1, 'memory'),
                   'pids': Hierarchy(str(tmp_path / 'pids'), 1, 'pids')}
    pods = ['pod1a'] + (['podbe'] if kubelet_pod else [])
    for h in hierarchies.values():
        for name in pods:
            (Path(h.path) / 'kubepods/besteffort' / name).mkdir(parents=True)
    ipam = tmp_path / 'state' / 'ipam' / '10.42.1.0_24'
    ipam.mkdir(parents=True)
    (ipam / '10.42.1.5').write_text('1a\neth0\n')
    node = PodsReconciler(str(tmp_path / 'state'), None, None, run=no_table,
                          hierarchies=hierarchies)
    planned = steps(node.plan(node.read()))
    assert ('forget_cgroup', 'kubepods/besteffort/pod1a') in planned
    assert ('forget_cgroup', 'kubepods/besteffort/podbe') not in planned
    assert (('remove_cgroups', 'kubepods') in planned) is not kubelet_pod


def test_pods_absent_on_a_reset_node_does_nothing(tmp_path):
    node = Planner(None, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))
    assert node.plan_absent(NodeState({}, [], {}, [], None)) == []


def test_pods_absent_reads_records_and_folders_without_checking_pods(tmp_path):
    (tmp_path / 'pods').mkdir()
    record = {k: v for k, v in state(pod('web')).items() if k not in HEALTH}
    (tmp_path / 'pods' / 'default_web.json').write_text(json.dumps(record))
    (tmp_path / 'pods' / 'default_bad.json').write_text('{garbage')
    node = PodsReconciler(str(tmp_path), None, None, run=no_table, hierarchies={})
    current = node.read()
    assert list(current.pods) == ['default/web'] and current.health == {}
    assert current.stale_ipam == [str(tmp_path / 'pods')] and current.guard is None
    assert list(current.unreadable) == [str(tmp_path / 'pods' / 'default_bad.json')]


def test_pods_absent_removes_its_folders_after_the_pods_and_the_guard_last():
    from ansible.module_utils.podnet.pods.runtime import PHASES
    order = [verb for phase in PHASES for verb in phase]
    assert order.index('delete') < order.index('remove_folder') < order.index('delete_table')


# -- backend, tables ----------------------------------------------------------
def test_backend_absent_removes_the_vtep_and_every_owned_route():
    current = {'vtep': {'vni': 1}, 'fdb': {'02:00:00:00:00:02': '10.11.1.12'},
               'neigh': {'10.42.1.0': '02:00:00:00:00:02'},
               'routes': {'10.42.1.0/24': ('10.42.1.0', 'flannel.1', True),
                          '10.42.2.0/24': ('10.11.1.13', 'eth0', False)}, 'guard': None}
    assert steps(backend.plan(current, backend.NOTHING)) == [
        ('delete_vtep', 'flannel.1'), ('del_routes', '10.42.2.0/24')]
    assert backend.plan(backend.NOTHING, backend.NOTHING) == []


def test_a_table_is_deleted_only_when_it_is_there():
    assert steps(nft.plan_delete('ip podnet-policy', ([], []))) == [('delete_table', 'ip podnet-policy')]
    assert nft.plan_delete('ip podnet-policy', None) == []


def test_policy_absent_plans_from_the_table_alone():
    policy = library('podnet_policy')
    assert steps(policy.plan(([], []), None)) == [('delete_table', policy.TABLE)]
    assert policy.plan(None, None) == []
    assert policy.NodePolicy(None, '/nowhere', None).show({'table': None}) == {policy.TABLE: None}


# -- node: persist file and state directory -----------------------------------
def node_params(tmp_path, persist=True):
    return {'state_dir': str(tmp_path / 'state'),
            'persist_file': str(tmp_path / '90-podnet.conf') if persist else None}


def test_node_absent_removes_the_persist_file_and_podnets_state(tmp_path):
    node = library('podnet_node')
    p = node_params(tmp_path)
    (tmp_path / 'state' / 'pods').mkdir(parents=True)
    for name in ('lock', 'pod-cidr', '.pod-cidr.abc123'):
        (tmp_path / 'state' / name).write_text('x')
    (tmp_path / '90-podnet.conf').write_text('net.ipv4.ip_forward = 1\n')
    reset = node.NodeReset(p)
    current = reset.read()
    actions = reset.plan(current)
    assert steps(actions) == [('remove_file', p['persist_file']), ('remove_state', p['state_dir'])]
    reset.apply(actions, current)
    assert sorted(os.listdir(tmp_path)) == []
    assert reset.plan(reset.read()) == []


def test_node_absent_keeps_what_is_not_podnets_and_a_mount_point(tmp_path):
    os.makedirs(tmp_path / 'state' / 'ipam')
    (tmp_path / 'state' / 'someone-elses').write_text('x')
    nodestate.clear_state(str(tmp_path / 'state'), keep_dir=False)
    assert os.listdir(tmp_path / 'state') == ['someone-elses']
    os.unlink(tmp_path / 'state' / 'someone-elses')
    nodestate.clear_state(str(tmp_path / 'state'), keep_dir=True)  # a lab node's bind mount
    assert os.listdir(tmp_path) == ['state']


def test_a_reset_locks_only_a_node_that_has_a_lock(tmp_path):
    with node_lock(str(tmp_path / 'state'), create=False):
        pass
    assert not (tmp_path / 'state').exists()
    with node_lock(str(tmp_path / 'state')):
        pass
    with node_lock(str(tmp_path / 'state'), wait=0.3, create=False):
        assert (tmp_path / 'state' / 'lock').read_text().strip() == str(os.getpid())


def test_the_policy_record_follows_the_table(tmp_path):
    policy = library('podnet_policy')
    path = str(tmp_path / 'policy-source.json')
    record = policy.policy_source.dumps([], [{'namespace': 'x', 'name': 'a'}], {'x': {}})
    assert steps(policy.plan_source(None, record, path)) == [('record_source', path)]
    assert policy.plan_source(record, record, path) == []
    assert policy.plan_source(record.replace('"a"', '"b"'), record, path)[0].reason == \
        'the policies or pods changed'
    assert steps(policy.plan_source(record, None, path)) == [('forget_source', path)]
    assert policy.plan_source(None, None, path) == []
    # Regression: garbage that is text was said to be a change of policies or pods
    assert policy.plan_source('[1', record, path)[0].reason.startswith('unreadable (not JSON: ')

    ran = []
    present = policy.NodePolicy(lambda *a, **k: ran.append(a) or (0, '', ''), str(tmp_path), ([], [], {}, record))
    present.apply(policy.plan_source(None, record, path), None)
    assert ran == [], 'recording the source alone rewrote the nft table'
    assert policy.policy_source.load(str(tmp_path)) == {
        'policies': [], 'pods': [{'namespace': 'x', 'name': 'a'}], 'namespaces': {'x': {}}}
    policy.NodePolicy(None, str(tmp_path), None).apply(policy.plan_source(record, None, path), None)
    assert policy.policy_source.load(str(tmp_path)) is None
