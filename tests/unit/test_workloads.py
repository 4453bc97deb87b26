"""Workloads (issue 23): Deployments, ReplicaSets, StatefulSets, DaemonSets
and Jobs become the pods their controllers would keep, named as those name
them and the same on every run; what podnet does not model is listed, not
refused; the API server's rules for the fields read are applied."""
import copy

import pytest
import yaml
from ansible.module_utils.podnet.plan import manifests, workloads
from samples import refusal

TEMPLATE = {'metadata': {'labels': {'app': 'web'}},
            'spec': {'containers': [{'name': 'web', 'image': 'kennethreitz/httpbin',
                                     'ports': [{'containerPort': 80, 'name': 'http'}]}]}}


def workload(kind, name='web', replicas=3, **spec):
    body = {'selector': {'matchLabels': {'app': 'web'}}, 'template': copy.deepcopy(TEMPLATE)}
    if kind in ('Deployment', 'ReplicaSet', 'StatefulSet'):
        body['replicas'] = replicas
    if kind == 'Job':
        body = {'completions': replicas, 'template': copy.deepcopy(TEMPLATE)}
        body['template']['spec']['restartPolicy'] = 'Never'
    body.update(spec)
    return {'apiVersion': workloads.KINDS[kind], 'kind': kind, 'metadata': {'name': name}, 'spec': body}


def load(tmp_path, *docs, nodes=('node1', 'node2')):
    path = tmp_path / 'app.yaml'
    path.write_text(yaml.safe_dump_all(docs))
    return manifests.load([path], list(nodes))


def names(found):
    return [p.name for p in found.pods]


def test_a_deployment_keeps_its_replicas_named_by_template_hash_the_same_every_run(tmp_path):
    first = load(tmp_path, workload('Deployment'))
    assert len(first.pods) == 3 and len(set(names(first))) == 3
    assert all(n.startswith('web-') and len(n.split('-')) == 3 and len(n.split('-')[2]) == 5 for n in names(first))
    assert names(load(tmp_path, workload('Deployment'))) == names(first)
    pod_hash = names(first)[0].split('-')[1]
    assert first.pods[0].labels == {'app': 'web', 'pod-template-hash': pod_hash}
    assert {p.owner for p in first.pods} == {'Deployment default/web'}


def test_scaling_keeps_the_pods_there_are_and_a_new_template_replaces_them(tmp_path):
    three = names(load(tmp_path, workload('Deployment')))
    assert names(load(tmp_path, workload('Deployment', replicas=2))) == three[:2]
    assert names(load(tmp_path, workload('Deployment', replicas=0))) == []
    changed = workload('Deployment')
    changed['spec']['template']['spec']['containers'][0]['image'] = 'kennethreitz/httpbin:latest'
    assert not set(names(load(tmp_path, changed))) & set(three)


def test_a_statefulset_names_its_pods_by_ordinal_with_hostname_and_subdomain(tmp_path):
    found = load(tmp_path, workload('StatefulSet', name='db', serviceName='db'))
    assert names(found) == ['db-0', 'db-1', 'db-2']
    assert [p.hostname for p in found.pods] == ['db-0', 'db-1', 'db-2']
    assert found.pods[1].labels['statefulset.kubernetes.io/pod-name'] == 'db-1'


def test_a_daemonset_runs_one_pod_pinned_to_each_node(tmp_path):
    found = load(tmp_path, workload('DaemonSet', name='agent'), nodes=('node1', 'node2', 'node3'))
    assert [p.node_name for p in found.pods] == ['node1', 'node2', 'node3']
    assert len(set(names(found))) == 3


def test_a_job_runs_its_completions_with_the_restart_policy_it_asks(tmp_path):
    found = load(tmp_path, workload('Job', name='migrate', replicas=2))
    assert len(found.pods) == 2 and {p.restart_policy for p in found.pods} == {'Never'}
    assert found.pods[0].labels['job-name'] == 'migrate'


@pytest.mark.parametrize('change, words', [
    (lambda w: w['spec']['selector'].update(matchLabels={'app': 'other'}),
     'Deployment default/web: spec.template.metadata.labels: selector does not match template labels'),
    (lambda w: w['spec'].pop('selector'), 'Deployment default/web: spec.selector: required'),
    (lambda w: w['spec'].update(replicas=-1), 'spec.replicas: -1 must be an integer >= 0'),
    (lambda w: w['spec']['template']['spec'].update(restartPolicy='Never'),
     "spec.template.spec.restartPolicy: 'Never' is not allowed for a Deployment (Always)"),
    (lambda w: w['spec']['template']['spec']['containers'][0].update(image=' '),
     'Deployment default/web: spec.template: spec.containers[0].image: '),
    (lambda w: w['spec'].update(replicaz=1), 'spec.replicaz: unknown field'),
])
def test_a_bad_deployment_is_refused_naming_it_and_its_field(tmp_path, change, words):
    doc = workload('Deployment')
    change(doc)
    path = tmp_path / 'app.yaml'
    path.write_text(yaml.safe_dump(doc))
    assert words in refusal([path])


def test_a_job_must_say_how_it_restarts(tmp_path):
    doc = workload('Job')
    doc['spec']['template']['spec']['restartPolicy'] = 'Always'
    path = tmp_path / 'job.yaml'
    path.write_text(yaml.safe_dump(doc))
    assert "restartPolicy: 'Always' is not allowed for a Job (OnFailure, Never)" in refusal([path])


def test_a_pod_name_a_workload_also_makes_is_refused(tmp_path):
    found = load(tmp_path, workload('StatefulSet', name='db', replicas=1))
    clash = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'db-0'}, 'spec': TEMPLATE['spec']}
    path = tmp_path / 'clash.yaml'
    path.write_text(yaml.safe_dump_all([workload('StatefulSet', name='db', replicas=1), clash]))
    assert names(found) == ['db-0']
    assert 'Pod default/db-0 is also declared' in refusal([path])


def test_objects_podnet_does_not_model_are_listed_not_refused(tmp_path):
    others = [{'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'settings'}, 'data': {'a': '1'}},
              {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': {'name': 'web', 'namespace': 'default'}},
              {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole', 'metadata': {'name': 'reader'}}]
    found = load(tmp_path, workload('Deployment'), *others)
    assert found.ignored == ['ConfigMap default/settings', 'ServiceAccount default/web', 'ClusterRole reader']
    assert len(found.pods) == 3


def test_a_pod_exported_from_a_real_cluster_comes_up_as_it_is(tmp_path):
    """Regression (issue 23): the projected service-account volume and its
    mount, which every such pod has, made podnet refuse it
    (`spec.volumes: not supported by podnet`)."""
    exported = {'apiVersion': 'v1', 'kind': 'Pod',
                'metadata': {'name': 'web-6d4cf56db6-abcde', 'namespace': 'default', 'uid': 'x', 'resourceVersion': '1',
                             'generateName': 'web-6d4cf56db6-', 'labels': {'app': 'web'},
                             'ownerReferences': [{'kind': 'ReplicaSet', 'name': 'web-6d4cf56db6'}]},
                'spec': {'containers': [{'name': 'web', 'image': 'kennethreitz/httpbin', 'volumeMounts': [
                    {'name': 'kube-api-access-x7k2p', 'mountPath': '/var/run/secrets/kubernetes.io/serviceaccount',
                     'readOnly': True}]}],
                    'serviceAccountName': 'default',
                    'volumes': [{'name': 'kube-api-access-x7k2p', 'projected': {'sources': [
                        {'serviceAccountToken': {'path': 'token'}}]}}]},
                'status': {'phase': 'Running', 'podIP': '10.244.1.5'}}
    [pod] = load(tmp_path, exported).pods
    assert pod.key == 'default/web-6d4cf56db6-abcde' and pod.notes == ()


def test_what_podnet_does_not_set_up_is_noted_not_refused(tmp_path):
    doc = workload('Deployment')
    doc['spec']['template']['spec']['volumes'] = [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'd'}}]
    doc['spec']['template']['spec']['containers'][0].update(
        volumeMounts=[{'name': 'data', 'mountPath': '/data'}],
        env=[{'name': 'TOKEN', 'valueFrom': {'secretKeyRef': {'name': 's', 'key': 't'}}}, {'name': 'A', 'value': '1'}],
        envFrom=[{'configMapRef': {'name': 'settings'}}])
    pods = load(tmp_path, doc).pods
    assert pods[0].containers[0].env == {'A': '1'}
    assert pods[0].notes == ('container web: env TOKEN (valueFrom) is not set',
                             'container web: envFrom configMapRef settings is not read',
                             'container web: volume data (persistentVolumeClaim) is not mounted at /data')


def test_a_mount_of_a_volume_the_pod_does_not_have_is_refused(tmp_path):
    doc = workload('Deployment')
    doc['spec']['template']['spec']['containers'][0]['volumeMounts'] = [{'name': 'nope', 'mountPath': '/x'}]
    path = tmp_path / 'app.yaml'
    path.write_text(yaml.safe_dump(doc))
    assert "spec.containers[0].volumeMounts[0].name: 'nope' names no volume of spec.volumes" in refusal([path])
