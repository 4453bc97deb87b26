"""Init containers: spec.initContainers read as the API server reads them
(and what it forbids there refused by field), carried in the cluster plan
and podnet_pods' options into the spec hash, planned (they run when a
sandbox is made, never on a restart), shown in the diff, and run one after
another to completion with retries by the pod's restartPolicy, under Never
leaving a pod whose init container fails Failed."""
import os

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods import initcontainers, srcguard
from ansible.module_utils.podnet.pods.planner import Planner
from ansible.module_utils.podnet.pods.reconciler import PodsReconciler
from ansible.module_utils.podnet.pods.records import RecordStore, new_record, spec_hash
from ansible.module_utils.podnet.pods.spawner import TIMED_OUT
from samples import MTU, node_state, pod, state
from test_cluster_plan import AGNHOST, CATALOG, build, pod_of, write
from test_podspec import load, refusal, spec

INIT = [{'name': 'migrate', 'image': 'busybox', 'command': ['sh', '-c', 'sleep 1']},
        {'name': 'seed', 'image': 'busybox', 'command': ['true']}]


# -- reading spec.initContainers ---------------------------------------------------
def test_init_containers_are_read_in_order_with_the_containers_own_fields(tmp_path):
    found = load(tmp_path, spec(initContainers=INIT + [{
        'name': 'as-user', 'image': 'busybox', 'command': ['id'], 'env': [{'name': 'A', 'value': 'b'}],
        'securityContext': {'runAsUser': 1000, 'capabilities': {'drop': ['ALL']}}}]))
    assert [c.name for c in found.init_containers] == ['migrate', 'seed', 'as-user']
    user = found.init_containers[2]
    assert (user.user, user.capabilities, user.env, user.seccomp) == (1000, [], {'A': 'b'}, 'RuntimeDefault')
    assert [c.name for c in found.containers] == ['c']


def test_a_pod_without_init_containers_has_none(tmp_path):
    assert load(tmp_path, spec(initContainers=[])).init_containers == []
    assert load(tmp_path, lambda d: None).init_containers == []


@pytest.mark.parametrize('field', ['readinessProbe', 'livenessProbe', 'startupProbe'])
def test_probes_on_an_init_container_are_refused_by_field(tmp_path, field):
    init = dict(INIT[0], **{field: {'tcpSocket': {'port': 80}}})
    assert ('spec.initContainers[0].%s: may not be set for init containers' % field
            in refusal(tmp_path, spec(initContainers=[init])))


def test_a_sidecar_is_refused_saying_what_to_do(tmp_path):
    said = refusal(tmp_path, spec(initContainers=[INIT[0], dict(INIT[1], restartPolicy='Always')]))
    assert ('spec.initContainers[1].restartPolicy: Always (a sidecar container) is not supported by podnet, '
            'whose init containers run to completion: make it one of spec.containers') in said


def test_an_init_container_restart_policy_other_than_always_is_refused(tmp_path):
    said = refusal(tmp_path, spec(initContainers=[dict(INIT[0], restartPolicy='OnFailure')]))
    assert "spec.initContainers[0].restartPolicy: 'OnFailure': an init container may only set Always" in said


@pytest.mark.parametrize('init, words', [
    ([INIT[0], dict(INIT[1], name='migrate')], "spec.initContainers[1].name: 'migrate' is already used by "
     "spec.initContainers[0].name"),
    ([dict(INIT[0], name='c')], "spec.containers[0].name: 'c' is already used by spec.initContainers[0].name"),
    ([dict(INIT[0], image='')], "spec.initContainers[0].image: '' must be a non-empty string"),
    ([dict(INIT[0], lifecycle={'postStart': {}})], 'spec.initContainers[0].lifecycle: not supported'),
    ([dict(INIT[0], bogus=1)], 'spec.initContainers[0].bogus: unknown field'),
    ({'name': 'x'}, 'spec.initContainers: must be a list'),
])
def test_init_containers_are_validated_as_containers_are(tmp_path, init, words):
    assert words in refusal(tmp_path, spec(initContainers=init))


def test_init_containers_count_in_the_qos_class_and_the_notes(tmp_path):
    limited = {'limits': {'cpu': '1', 'memory': '64Mi'}}
    found = load(tmp_path, spec(volumes=[{'name': 'data', 'emptyDir': {}}], initContainers=[dict(
        INIT[0], resources=limited, volumeMounts=[{'name': 'data', 'mountPath': '/data'}])]))
    assert found.qos_class == 'Burstable'  # the app container has no limits
    assert found.notes == ('init container migrate: volume data (emptyDir) is not mounted at /data',)


# -- the cluster plan ------------------------------------------------------------------
INIT_POD = """apiVersion: v1
kind: Pod
metadata: {name: shop}
spec:
  nodeName: node1
  restartPolicy: Never
  initContainers:
  - {name: wait, image: busybox, command: [sh, -c, "sleep 1"]}
  - {name: schema, image: myorg/migrate:2}
  containers:
  - {name: web, image: myorg/web, command: [sleep, "60"]}
"""


def test_the_plan_carries_init_containers_and_stands_in_with_complete(tmp_path):
    plan = build(write(tmp_path, INIT_POD))
    shop = pod_of(plan, 'default/shop')
    wait, schema = shop['init_containers']
    assert wait['argv'] == ['sh', '-c', 'sleep 1'] and 'stand_in' not in wait
    assert schema['argv'] == CATALOG[AGNHOST]['entrypoint'] + ['stand-in', '--complete'] and schema['stand_in']
    assert plan['stand_ins'] == {'myorg/migrate:2': ['default/shop/schema']}
    assert plan['notes'] == {'Pod default/shop': [
        'init container schema: its stand-in completes at once (exit 0), doing nothing its image would']}


def test_a_pod_without_init_containers_is_planned_as_before(tmp_path):
    plan = build(write(tmp_path, INIT_POD.replace('initContainers:', 'x:').split('  x:')[0] + """  containers:
  - {name: web, image: myorg/web, command: [sleep, "60"]}
"""))
    assert 'init_containers' not in pod_of(plan, 'default/shop')


def test_an_unknown_init_image_refused_names_its_field(tmp_path):
    with pytest.raises(SpecError) as refused:
        build(write(tmp_path, INIT_POD), unknown_images='refuse')
    assert "Pod default/shop: spec.initContainers[1].image: unknown image 'myorg/migrate:2'" in str(refused.value)


def test_planned_init_containers_pass_the_pods_module_s_checks(tmp_path):
    from podnet_testlib import action_plugin
    from test_reset_plan import library
    kept = action_plugin('podnet_cluster').registered(build(write(tmp_path, INIT_POD)))
    [shop] = library('podnet_pods').pods_of(kept['nodes']['node1']['pods_json'])
    assert [c['name'] for c in shop['init_containers']] == ['wait', 'schema']


# -- podnet_pods' checks -------------------------------------------------------------
def pods_module():
    from test_reset_plan import library
    return library('podnet_pods')


def with_init(*init, restart_policy='Always'):
    return dict(pod('web'), restart_policy=restart_policy,
                init_containers=[{'name': name, 'argv': ['true']} for name in init])


def test_a_pod_without_init_containers_gets_an_empty_list():
    [checked] = pods_module().pods_of([pod('web')])
    assert checked['init_containers'] == []


@pytest.mark.parametrize('change, words', [
    (lambda p: p['init_containers'][0].update(probes={'readiness': {}}),
     'pods[0] (default/web): init_containers[0] (setup): probes: an init container has none'),
    (lambda p: p['init_containers'][0].update(argv=[]), 'init_containers[0] (setup): argv is empty'),
    (lambda p: p['init_containers'][0].update(name='main'),
     'init_containers and containers: a name is used twice (main)'),
])
def test_the_module_refuses_init_containers_it_cannot_run_naming_them(change, words):
    wanted = with_init('setup')
    change(wanted)
    with pytest.raises(SpecError) as refused:
        pods_module().pods_of([wanted])
    assert words in str(refused.value)


# -- the spec hash and the record ------------------------------------------------------
def test_init_containers_are_in_the_spec_hash_and_none_hash_as_before():
    web = pod('web')
    assert spec_hash(dict(web, init_containers=[])) == spec_hash(web)
    assert spec_hash(with_init('setup')) != spec_hash(web)
    changed = with_init('setup')
    changed['init_containers'][0]['argv'] = ['false']
    assert spec_hash(changed) != spec_hash(with_init('setup'))


def test_a_new_record_keeps_the_init_commands_only_when_there_are_some():
    assert 'init_containers' not in new_record('default/web', pod('web'))
    record = new_record('default/web', with_init('a', 'b'))
    assert record['init_commands'] == {'a': ['true'], 'b': ['true']} and record['init_containers'] == {}


# -- the plan on the node ----------------------------------------------------------------
@pytest.fixture
def node(tmp_path):
    return Planner(MTU, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))


def test_creating_a_pod_says_its_init_containers_run_first_by_name(node):
    assert node.plan(node_state(), {'default/web': with_init('a', 'b')})[0] == (
        'create', 'default/web', 'new pod; init containers run first: a, b')


def test_a_changed_init_container_recreates_the_pod_and_reruns_them(node):
    old, new = with_init('a'), with_init('a', 'b')
    assert node.plan(node_state({'default/web': state(old)}), {'default/web': new})[0] == (
        'recreate', 'default/web', 'containers changed; init containers run first: a, b')


def test_a_container_that_exited_restarts_without_rerunning_the_init_containers(node):
    web = with_init('a')
    done = state(web, dead=['main'], init_containers={'a': {'exit_code': 0, 'tries': 1}})
    assert node.plan(node_state({'default/web': done}), {'default/web': web}) == [
        ('restart', 'default/web', 'container main exited')]


def test_a_pod_whose_init_containers_completed_needs_nothing(node):
    web = with_init('a')
    done = state(web, init_containers={'a': {'exit_code': 0, 'tries': 1}})
    assert node.plan(node_state({'default/web': done}), {'default/web': web}) == []


def test_the_diff_shows_init_containers_to_run_then_completed(tmp_path):
    web = with_init('a')
    pods = PodsReconciler(str(tmp_path), '10.42.1.0/24', MTU, None, {'default/web': web}, hierarchies={})
    assert pods.show_wanted(node_state())['default/web']['init_containers'] == {
        'a': 'true (runs to completion first)'}
    done = node_state({'default/web': state(web, commands={'main': web['containers'][0]['argv']},
                                            init_commands={'a': ['true']},
                                            init_containers={'a': {'exit_code': 0, 'tries': 1}})})
    assert pods.show(done) == pods.show_wanted(done)
    assert pods.show(done)['default/web']['init_containers'] == {'a': 'true (completed)'}


# -- a pod that ends Failed (restartPolicy Never) ---------------------------------------------
WHY = 'init container a exited with code 3 (tried once, restartPolicy Never): none of its containers started'


def failed_node(web, why=WHY, **changes):
    current = node_state()
    current.failed = {'default/web': dict({'spec_hash': spec_hash(web), 'reason': why}, **changes)}
    return current


def test_a_pod_that_ended_failed_with_its_spec_is_left_failed(node):
    web = with_init('a', restart_policy='Never')
    assert node.plan(failed_node(web), {'default/web': web}) == []


@pytest.mark.parametrize('change', [
    lambda p: p['init_containers'][0].update(argv=['false']),  # a new spec
    lambda p: p.update(restart_policy='OnFailure'),
])
def test_a_failed_pod_wanted_otherwise_is_forgotten_then_made_again(node, change):
    web = with_init('a', restart_policy='Never')
    wanted = with_init('a', restart_policy='Never')
    change(wanted)
    assert [a[:2] for a in node.plan(failed_node(web), {'default/web': wanted})] == [
        ('forget_failed', 'default/web'), ('create', 'default/web'), ('guard', srcguard.TABLE)]


def test_a_failed_pod_no_longer_wanted_is_forgotten(node):
    assert node.plan(failed_node(with_init('a', restart_policy='Never')), {}) == [
        ('forget_failed', 'default/web', 'not wanted on this node')]


def test_the_module_reports_and_shows_a_failed_pod_the_same_before_and_after(tmp_path):
    web = with_init('a', restart_policy='Never')
    pods = PodsReconciler(str(tmp_path), '10.42.1.0/24', MTU, None, {'default/web': web}, hierarchies={})
    current = failed_node(web)
    assert pods.show(current) == pods.show_wanted(current) == {'default/web': {'failed': WHY}}
    result = pods.result(current, [])
    assert result['failed_pods'] == {'default/web': WHY} and 'default/web' not in result['ips']
    assert pods.warnings(current, result)[0] == (
        'pod default/web is Failed, and stays so until its spec changes (restartPolicy Never): ' + WHY)


def test_the_store_keeps_failed_pods_and_refuses_what_it_cannot_trust(tmp_path):
    store = RecordStore(str(tmp_path))
    assert store.failed() == ({}, {})
    store.save_failed('default/web', 'abc', WHY)
    (tmp_path / 'failed-pods' / 'default_other.json').write_text('{"key": "default/web", "spec_hash": "x",'
                                                                 ' "reason": "y"}')
    (tmp_path / 'failed-pods' / 'default_bad.json').write_text('[]')
    found, untrusted = store.failed()
    assert found == {'default/web': {'spec_hash': 'abc', 'reason': WHY}}
    assert sorted(os.path.basename(p) for p in untrusted) == ['default_bad.json', 'default_other.json']
    assert 'names default/web' in untrusted[str(tmp_path / 'failed-pods' / 'default_other.json')]
    store.forget_failed('default/web')
    assert 'default/web' not in store.failed()[0]


def test_an_untrusted_failed_file_is_removed_and_its_pod_made_again(tmp_path):
    store = RecordStore(str(tmp_path))
    (tmp_path / 'failed-pods').mkdir()
    (tmp_path / 'failed-pods' / 'default_web.json').write_text('not json')
    pods = PodsReconciler(str(tmp_path), '10.42.1.0/24', MTU, None, {'default/web': with_init('a')}, hierarchies={})
    current = node_state()
    current.failed, current.unreadable = store.failed()
    assert [a[:2] for a in pods.plan(current)][:2] == [
        ('forget_record', str(tmp_path / 'failed-pods' / 'default_web.json')), ('create', 'default/web')]


def test_a_failure_under_never_does_not_say_the_pod_was_removed():
    runs = Runs(a=[3])
    with pytest.raises(initcontainers.InitFailed) as failed:
        initcontainers.run_all('default/web', with_init('a', restart_policy='Never'), runs, sleep=runs.sleep)
    assert failed.value.message == WHY


# -- running them --------------------------------------------------------------------------
class Runs:
    """run() for run_all: the exit codes each container gives, try after try."""

    def __init__(self, **codes):
        self.codes, self.ran, self.slept = {k: list(v) for k, v in codes.items()}, [], []

    def __call__(self, container):
        self.ran.append(container['name'])
        return self.codes[container['name']].pop(0)

    def sleep(self, seconds):
        self.slept.append(seconds)


def test_init_containers_run_in_order_each_once_it_completes():
    runs = Runs(a=[0], b=[0])
    done = initcontainers.run_all('default/web', with_init('a', 'b'), runs, sleep=runs.sleep)
    assert runs.ran == ['a', 'b'] and done == {'a': {'exit_code': 0, 'tries': 1}, 'b': {'exit_code': 0, 'tries': 1}}


def test_a_failing_init_container_is_tried_again_with_a_back_off():
    runs = Runs(a=[1, 2, 0], b=[0])
    done = initcontainers.run_all('default/web', with_init('a', 'b'), runs, sleep=runs.sleep)
    assert runs.ran == ['a', 'a', 'a', 'b'] and runs.slept == [1.0, 2.0] and done['a']['tries'] == 3


def test_an_init_container_that_keeps_failing_fails_the_pod_and_stops_the_next():
    runs = Runs(a=[1, 1, 7], b=[0])
    with pytest.raises(initcontainers.InitFailed) as failed:
        initcontainers.run_all('default/web', with_init('a', 'b'), runs, sleep=runs.sleep)
    assert runs.ran == ['a', 'a', 'a'] and failed.value.container == 'a'
    assert str(failed.value) == ('default/web: init container a exited with code 7 (tried 3 times, restartPolicy '
                                 'Always): none of its containers started, and the pod was removed')


def test_under_restart_policy_never_an_init_container_is_tried_once():
    runs = Runs(a=[3])
    with pytest.raises(initcontainers.InitFailed) as failed:
        initcontainers.run_all('default/web', with_init('a', restart_policy='Never'), runs, sleep=runs.sleep)
    assert runs.ran == ['a'] and runs.slept == []
    assert 'init container a exited with code 3 (tried once, restartPolicy Never)' in str(failed.value)


def test_an_init_container_past_its_timeout_is_not_tried_again():
    runs = Runs(a=[TIMED_OUT, 0])
    with pytest.raises(initcontainers.InitFailed) as failed:
        initcontainers.run_all('default/web', with_init('a'), runs, timeout=5, sleep=runs.sleep)
    assert runs.ran == ['a'] and 'init container a still ran after 5 s (init_timeout) and was killed' in str(
        failed.value)


def test_the_failure_quotes_the_end_of_the_init_container_s_log(tmp_path):
    log = tmp_path / 'a.log'
    log.write_bytes(b'x' * 1000 + b'\nconnecting to db\n\nno route to host \xff\n')
    said = initcontainers.last_words(str(log))
    assert said.startswith('; its log ends: ') and said.endswith('connecting to db | no route to host \ufffd')
    assert len(said) < initcontainers.LAST_WORDS + 40
    assert initcontainers.last_words(str(tmp_path / 'none.log')) == ''


# -- the pod's cgroup -------------------------------------------------------------------------
def test_the_pod_cgroup_holds_the_larger_of_its_containers_and_its_largest_init_container():
    def container(memory, cpu):
        return {'resources': {'memory_limit': memory, 'cpu_limit': cpu, 'cpu_request': cpu}}
    app = [container(100, 200), container(100, 200)]
    assert cgroups.pod_limits(app, 10, [container(50, 100)]) == cgroups.Limits(200, 400, 400, 10)
    assert cgroups.pod_limits(app, 10, [container(500, 100), container(50, 1000)]) == cgroups.Limits(
        500, 1000, 1000, 10)
    assert cgroups.pod_limits(app, 10, [container(None, 100)]).memory is None  # one without: no pod limit
