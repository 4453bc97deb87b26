"""Manifests: files, directories and documents read as the API server would,
every refusal naming file, object and field; deterministic scheduling."""
import copy
import json

import pytest
import yaml
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.plan import manifests
from ansible.module_utils.podnet.plan.manifests import Namespace
from ansible.module_utils.podnet.plan.podspec import Container, ContainerPort, Pod
from samples import refusal

POD = {
    'apiVersion': 'v1', 'kind': 'Pod',
    'metadata': {'name': 'web', 'labels': {'app': 'web'}},
    'spec': {'containers': [
        {'name': 'httpbin', 'image': 'kennethreitz/httpbin',
         'ports': [{'containerPort': 80, 'name': 'http'}]},
        {'name': 'curl', 'image': 'curlimages/curl:8.5.0', 'command': ['sleep'],
         'args': ['365d'], 'env': [{'name': 'MODE', 'value': 'test'}, {'name': 'EMPTY'},
                 {'name': 'NULL', 'value': None}],
         'workingDir': '/tmp', 'ports': [{'containerPort': 5353, 'protocol': 'UDP'}]},
    ]},
}


NAMESPACE = {'apiVersion': 'v1', 'kind': 'Namespace',
             'metadata': {'name': 'prod', 'labels': {'team': 'blue'}}}


POLICY = {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
          'metadata': {'name': 'deny-all'}, 'spec': {'podSelector': {}}}


def pod(name='web', namespace=None, change=None):
    doc = copy.deepcopy(POD)
    doc['metadata']['name'] = name
    if namespace:
        doc['metadata']['namespace'] = namespace
    if change:
        change(doc)
    return doc


def write(path, *docs):
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_multi_document_file_gives_typed_objects(tmp_path):
    file = tmp_path / 'all.yaml'
    file.write_text('---\n' + yaml.safe_dump(NAMESPACE) + '---\n---\n'
                    + yaml.safe_dump(pod(namespace='prod')) + '---\n' + yaml.safe_dump(POLICY))
    found = manifests.load([file])
    assert found.namespaces['prod'] == Namespace(
        'prod', {'team': 'blue', 'kubernetes.io/metadata.name': 'prod'})
    [web] = found.pods
    assert (web.namespace, web.name, web.key, web.labels) == ('prod', 'web', 'prod/web',
                                                              {'app': 'web'})
    assert web.node_name is None
    assert web.containers == [
        Container('httpbin', 'kennethreitz/httpbin', [], [], {}, [ContainerPort('http', 80, 'TCP')],
                  None),
        Container('curl', 'curlimages/curl:8.5.0', ['sleep'], ['365d'],
                  {'MODE': 'test', 'EMPTY': '', 'NULL': ''}, [ContainerPort(None, 5353, 'UDP')],
                  '/tmp')]
    assert found.policies == [dict(POLICY, metadata={'name': 'deny-all', 'namespace': 'default'})]


def test_default_and_kube_system_namespaces_exist_implicitly(tmp_path):
    found = manifests.load([write(tmp_path / 'p.yaml', pod())])
    assert found.pods[0].namespace == 'default'
    assert found.namespaces == {
        'default': Namespace('default', {'kubernetes.io/metadata.name': 'default'}),
        'kube-system': Namespace('kube-system', {'kubernetes.io/metadata.name': 'kube-system'})}


def test_declared_default_keeps_its_labels_and_the_automatic_one_wins(tmp_path):
    ns = {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {
        'name': 'default', 'labels': {'env': 'dev', 'kubernetes.io/metadata.name': 'other'}}}
    found = manifests.load([write(tmp_path / 'ns.yaml', ns)])
    assert found.namespaces['default'].labels == {
        'env': 'dev', 'kubernetes.io/metadata.name': 'default'}


def test_directory_reads_manifest_files_sorted_by_name_not_recursively(tmp_path):
    write(tmp_path / 'b.yml', pod('b'))
    write(tmp_path / 'a.yaml', pod('a'))
    (tmp_path / 'c.json').write_text(json.dumps(pod('c')))
    (tmp_path / 'notes.txt').write_text('not: [a manifest')
    (tmp_path / 'sub').mkdir()
    write(tmp_path / 'sub' / 'd.yaml', pod('d'))
    found = manifests.load([tmp_path])
    assert [p.name for p in found.pods] == ['a', 'b', 'c']


def test_single_path_string_and_repeated_files_are_read_once(tmp_path):
    file = write(tmp_path / 'p.yaml', pod())
    assert [p.key for p in manifests.load(str(file)).pods] == ['default/web']
    assert len(manifests.load([tmp_path, file, str(file)]).pods) == 1


def test_list_kind_is_expanded_in_yaml_and_json(tmp_path):
    listed = {'apiVersion': 'v1', 'kind': 'List', 'items': [NAMESPACE, pod('a', 'prod')]}
    write(tmp_path / 'list.yaml', listed)
    (tmp_path / 'list2.json').write_text(json.dumps(
        {'apiVersion': 'v1', 'kind': 'List', 'items': [pod('b', 'prod'), POLICY]}))
    found = manifests.load([tmp_path])
    assert [p.key for p in found.pods] == ['prod/a', 'prod/b']
    assert set(found.namespaces) == {'prod', 'default', 'kube-system'}
    assert [p['metadata']['name'] for p in found.policies] == ['deny-all']


def test_an_explicit_empty_list_means_no_workloads():
    found = manifests.load([])
    assert (found.pods, found.policies, list(found.namespaces)) == ([], [], ['default', 'kube-system'])


@pytest.mark.parametrize('name, text', [
    ('empty.yaml', ''), ('blank.yaml', '---\n---\n'), ('comment.yml', '# nothing yet\n'),
    ('list.yaml', yaml.safe_dump({'apiVersion': 'v1', 'kind': 'List', 'items': []}))])
def test_a_file_without_objects_is_refused_naming_it(tmp_path, name, text):
    file = tmp_path / name
    file.write_text(text)
    for given in (file, tmp_path):  # alone, or as the only file of a directory
        message = refusal([given])
        assert message.startswith('%s: holds no Kubernetes objects' % given)
        assert 'podnet_manifests: []' in message


def test_a_directory_without_manifest_files_is_refused(tmp_path):
    (tmp_path / 'README.md').write_text('pods go here')
    assert refusal([write(tmp_path / 'p.yaml', pod()), tmp_path / 'nothing']) \
        == '%s: no such manifest file or directory' % (tmp_path / 'nothing')
    (tmp_path / 'nothing').mkdir()
    assert refusal([tmp_path / 'nothing']).startswith(
        '%s: holds no Kubernetes objects' % (tmp_path / 'nothing'))


def test_an_empty_file_next_to_objects_is_refused_but_not_an_empty_file_in_a_directory(
        tmp_path):
    (tmp_path / 'empty.yaml').write_text('')
    write(tmp_path / 'p.yaml', pod())
    assert [p.key for p in manifests.load([tmp_path]).pods] == ['default/web']
    assert refusal([tmp_path / 'p.yaml', tmp_path / 'empty.yaml']).startswith(
        '%s: holds no Kubernetes objects' % (tmp_path / 'empty.yaml'))


def test_namespace_may_be_declared_after_its_pods(tmp_path):
    write(tmp_path / 'a.yaml', pod(namespace='prod'))
    write(tmp_path / 'b.yaml', NAMESPACE)
    assert manifests.load([tmp_path]).pods[0].key == 'prod/web'


def test_policy_keeps_its_namespace_and_is_a_copy(tmp_path):
    policy = dict(POLICY, metadata={'name': 'allow', 'namespace': 'prod'})
    found = manifests.load([write(tmp_path / 'p.yaml', NAMESPACE, policy)])
    assert found.policies == [policy]
    found.policies[0]['spec']['podSelector']['x'] = 1
    assert policy['spec']['podSelector'] == {}


def test_restart_policy_defaults_to_always_and_is_validated(tmp_path):
    def policy(doc):
        return manifests.load([write(tmp_path / 'p.yaml', doc)]).pods[0].restart_policy
    assert policy(pod()) == 'Always'
    assert policy(pod(change=lambda d: d['spec'].update(restartPolicy='Never'))) == 'Never'
    with pytest.raises(SpecError, match=r"spec.restartPolicy: 'Sometimes' must be one of"):
        policy(pod(change=lambda d: d['spec'].update(restartPolicy='Sometimes')))


@pytest.mark.parametrize('change, field, words', [
    (lambda d: d['metadata'].pop('name'), 'metadata.name', 'required'),
    (lambda d: d['metadata'].update(name='Web_1'), 'metadata.name', 'DNS-1123 subdomain'),
    (lambda d: d['metadata'].update(name='a' * 254), 'metadata.name', 'at most 253'),
    (lambda d: d['metadata'].update(namespace='Prod'), 'metadata.namespace', 'DNS-1123 label'),
    (lambda d: d.pop('metadata'), 'metadata', 'required'),
    (lambda d: d.pop('spec'), 'spec', 'required'),
    (lambda d: d['spec'].update(containers=[]), 'spec.containers', 'at least one'),
    (lambda d: d['spec'].update(hostNetwork=True), 'spec.hostNetwork', 'not supported'),
    (lambda d: d['spec'].update(nodeName='Node_1'), 'spec.nodeName', 'DNS-1123 subdomain'),
    (lambda d: d['spec']['containers'].__setitem__(1, 'curl'), 'spec.containers[1]',
     'must be a mapping'),
    (lambda d: d['spec']['containers'][1].update(name='httpbin'), 'spec.containers[1].name',
     "'httpbin' is already used by spec.containers[0].name"),
    (lambda d: d['spec']['containers'][1].update(name='Curl'), 'spec.containers[1].name',
     'DNS-1123 label'),
    (lambda d: d['spec']['containers'][1].pop('name'), 'spec.containers[1].name', 'required'),
    (lambda d: d['spec']['containers'][1].update(image=''), 'spec.containers[1].image',
     'non-empty string'),
    (lambda d: d['spec']['containers'][1].pop('image'), 'spec.containers[1].image',
     'non-empty string'),
    (lambda d: d['spec']['containers'][1].update(image=' busybox'), 'spec.containers[1].image',
     'surrounding spaces'),
    (lambda d: d['spec']['containers'][1].update(command='sleep 1'),
     'spec.containers[1].command', 'list of strings'),
    (lambda d: d['spec']['containers'][1].update(args=['a', 1]), 'spec.containers[1].args',
     'list of strings'),
    (lambda d: d['spec']['containers'][1].update(workingDir=['/']),
     'spec.containers[1].workingDir', 'must be a string'),
    (lambda d: d['spec']['containers'][1].update(env={'A': 'b'}), 'spec.containers[1].env',
     'must be a list'),
    (lambda d: d['spec']['containers'][1]['env'].append({'name': '1A', 'value': 'x'}),
     'spec.containers[1].env[3].name', 'not starting with a digit'),
    (lambda d: d['spec']['containers'][1]['env'].append({'name': 'A', 'value': 3}),
     'spec.containers[1].env[3].value', 'must be a string'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(containerPort=0),
     'spec.containers[1].ports[0].containerPort', '1 to 65535'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(containerPort=65536),
     'spec.containers[1].ports[0].containerPort', '1 to 65535'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(containerPort='80'),
     'spec.containers[1].ports[0].containerPort', 'integer'),
    (lambda d: d['spec']['containers'][1]['ports'][0].pop('containerPort'),
     'spec.containers[1].ports[0].containerPort', 'integer'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(protocol='ICMP'),
     'spec.containers[1].ports[0].protocol', 'TCP, UDP, SCTP'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(protocol='tcp'),
     'spec.containers[1].ports[0].protocol', 'TCP, UDP, SCTP'),
    (lambda d: d['spec']['containers'][1]['ports'][0].update(name='http'),
     'spec.containers[1].ports[0].name', "'http' is already used by spec.containers[0].ports[0]"),
    (lambda d: d['spec']['containers'][1].update(ports=80), 'spec.containers[1].ports',
     'must be a list'),
    (lambda d: d['spec']['containers'][1]['ports'].__setitem__(0, 80),
     'spec.containers[1].ports[0]', 'must be a mapping'),
    (lambda d: d['metadata'].update(labels=['app']), 'metadata.labels', 'mapping'),
    (lambda d: d['metadata']['labels'].update({'app': 1}), "metadata.labels['app']",
     'is not a label value (a string'),
    (lambda d: d['metadata']['labels'].update({'app': '-web'}), "metadata.labels['app']",
     'starting and ending with a letter or digit'),
    (lambda d: d['metadata']['labels'].update({'app': 'a' * 64}), "metadata.labels['app']",
     '1-63'),
    (lambda d: d['metadata']['labels'].update({'bad key': 'x'}),
     "metadata.labels: 'bad key'", 'DNS-1123 subdomain/'),
    (lambda d: d['metadata']['labels'].update({'Example.com/app': 'x'}),
     "metadata.labels: 'Example.com/app'", 'DNS-1123 subdomain/'),
    (lambda d: d['metadata']['labels'].update({'example.com/': 'x'}),
     "metadata.labels: 'example.com/'", 'is not a label key'),
    (lambda d: d['metadata']['labels'].update({'x' * 64: 'x'}), 'metadata.labels: ', '1-63'),
])
def test_invalid_pods_are_refused_naming_file_pod_and_field(tmp_path, change, field, words):
    file = write(tmp_path / 'pods.yaml', pod(change=change))
    message = refusal([file])
    assert field in message and words in message
    assert message.startswith(str(file))


def test_refusal_subject_reads_file_and_pod(tmp_path):
    file = write(tmp_path / 'pods.yaml', pod(change=lambda d: d['spec']['containers'][1]
                                            .update(image='')))
    assert refusal([file]).startswith('%s: Pod default/web: spec.containers[1].image: '
                                      % file)


def test_unnamed_object_is_named_by_document_and_item(tmp_path):
    nameless = pod(change=lambda d: d['metadata'].pop('name'))
    file = write(tmp_path / 'p.yaml', pod('a'), {'apiVersion': 'v1', 'kind': 'List',
                                                 'items': [pod('b'), nameless]})
    assert refusal([file]).startswith('%s document 2 items[1]: Pod: metadata.name: ' % file)


@pytest.mark.parametrize('name', ['ok', 'a-b-c', 'abc123'])
def test_valid_port_names(tmp_path, name):
    doc = pod(change=lambda d: d['spec']['containers'][0]['ports'][0].update(name=name))
    assert manifests.load([write(tmp_path / 'p.yaml', doc)]).pods[0].containers[0].ports[0].name \
        == name


@pytest.mark.parametrize('name', ['a' * 16, 'HTTP', '-http', 'http-', 'ht--tp', '8080', 'h_t', 7])
def test_invalid_port_names(tmp_path, name):
    doc = pod(change=lambda d: d['spec']['containers'][0]['ports'][0].update(name=name))
    message = refusal([write(tmp_path / 'p.yaml', doc)])
    assert 'spec.containers[0].ports[0].name: ' in message and 'IANA service name' in message


def test_valid_labels_are_kept(tmp_path):
    labels = {'app.kubernetes.io/name': 'web', 'tier': '', 'v': 'A_b.c-1'}
    doc = pod(change=lambda d: d['metadata'].update(labels=labels))
    assert manifests.load([write(tmp_path / 'p.yaml', doc)]).pods[0].labels == labels


@pytest.mark.parametrize('change, field, words', [
    (lambda d: d['metadata'].update(name='a' * 64), 'metadata.name', 'at most 63'),
    (lambda d: d['metadata'].update(name='a.b'), 'metadata.name', 'DNS-1123 label'),
    (lambda d: d['metadata'].update(labels={'team': 2}), "metadata.labels['team']", 'string'),
])
def test_invalid_namespaces_are_refused(tmp_path, change, field, words):
    doc = copy.deepcopy(NAMESPACE)
    change(doc)
    message = refusal([write(tmp_path / 'ns.yaml', doc)])
    assert message.startswith(str(tmp_path / 'ns.yaml'))
    assert field in message and words in message


def test_pod_in_undeclared_namespace_is_refused(tmp_path):
    file = write(tmp_path / 'p.yaml', pod(namespace='staging'))
    message = refusal([file])
    assert message.startswith('%s: Pod staging/web: metadata.namespace: ' % file)
    assert "'staging' is not declared (declared: default, kube-system)" in message


def test_policy_in_undeclared_namespace_is_refused(tmp_path):
    policy = dict(POLICY, metadata={'name': 'p', 'namespace': 'ghost'})
    message = refusal([write(tmp_path / 'np.yaml', policy)])
    assert 'NetworkPolicy ghost/p: metadata.namespace: ' in message


@pytest.mark.parametrize('doc, words', [
    ({'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {}}, 'Deployment: metadata.name: required'),
    ({'kind': 'ConfigMap', 'metadata': {'name': 'c'}}, 'apiVersion: required'),
    ({'apiVersion': 'v1', 'metadata': {'name': 'c'}}, 'kind: required'),
    (dict(POD, apiVersion='v2'), "apiVersion: 'v2' is not v1, the apiVersion of Pod"),
    (dict(POLICY, apiVersion='extensions/v1beta1'),
     "apiVersion: 'extensions/v1beta1' is not networking.k8s.io/v1"),
    (dict(NAMESPACE, apiVersion=None), 'apiVersion: None is not v1'),
    (dict(POLICY, metadata={}), 'NetworkPolicy: metadata.name: required'),
    (dict(POLICY, metadata={'name': 'Bad_Name'}), 'metadata.name: '),
    (['a', 'list'], 'must be a mapping'),
    ({'apiVersion': 'v1', 'kind': 'List', 'items': {'a': 1}}, 'items: must be a list'),
])
def test_unsupported_documents_are_refused_naming_file_and_document(tmp_path, doc, words):
    file = write(tmp_path / 'x.yaml', pod('first'), doc)
    message = refusal([file])
    assert words in message
    assert message.startswith(str(file))
    if 'metadata.name' not in words:
        assert message.startswith('%s document 2' % file)


def test_invalid_yaml_names_file_document_and_line(tmp_path):
    file = tmp_path / 'bad.yaml'
    file.write_text(yaml.safe_dump(pod()) + '---\nkind: Pod\nmetadata: [unclosed\n')
    message = refusal([file])
    assert message.startswith('%s document 2: invalid YAML at line ' % file)


def test_invalid_json_names_file(tmp_path):
    file = tmp_path / 'bad.json'
    file.write_text('{"kind": "Pod",')
    assert refusal([tmp_path]).startswith('%s: invalid JSON: ' % file)


def test_missing_path_is_refused(tmp_path):
    missing = tmp_path / 'nope.yaml'
    assert refusal([missing]) == '%s: no such manifest file or directory' % missing


def test_duplicate_pod_across_files_names_both(tmp_path):
    write(tmp_path / 'a.yaml', pod())
    write(tmp_path / 'b.yaml', pod())
    message = refusal([tmp_path])
    assert message == ('%s: Pod default/web: metadata.name: Pod default/web is also declared '
                       'in %s document 1' % (tmp_path / 'b.yaml', tmp_path / 'a.yaml'))


def test_duplicate_in_one_file_names_its_document(tmp_path):
    file = write(tmp_path / 'a.yaml', pod(), pod('other'), pod())
    assert refusal([file]).endswith('is also declared in %s document 1' % file)


def test_same_name_in_other_namespace_or_kind_is_no_duplicate(tmp_path):
    file = write(tmp_path / 'a.yaml', NAMESPACE, pod(), pod(namespace='prod'),
                 dict(POLICY, metadata={'name': 'web'}))
    found = manifests.load([file])
    assert [p.key for p in found.pods] == ['default/web', 'prod/web']


def test_duplicate_namespace_and_policy_are_refused(tmp_path):
    write(tmp_path / 'a.yaml', NAMESPACE, POLICY)
    write(tmp_path / 'b.yaml', NAMESPACE)
    assert 'Namespace prod is also declared in' in refusal([tmp_path])
    write(tmp_path / 'b.yaml', dict(POLICY, metadata={'name': 'deny-all',
                                                      'namespace': 'default'}))
    assert 'NetworkPolicy default/deny-all is also declared in' in refusal([tmp_path])


def make_pod(key, node=None):
    namespace, name = key.split('/')
    return Pod(namespace, name, {}, node, [Container(name, 'busybox')], key)


def test_schedule_pins_then_spreads_by_key_to_least_loaded_node():
    pods = [make_pod('default/d'), make_pod('default/a', 'n1'), make_pod('default/c'),
            make_pod('default/b'), make_pod('other/a', 'n1')]
    assert manifests.schedule(pods, ['n1', 'n2', 'n3']) == {
        'default/d': 'n2', 'default/a': 'n1', 'default/c': 'n3', 'default/b': 'n2',
        'other/a': 'n1'}


def test_schedule_breaks_ties_by_node_order_and_is_deterministic():
    pods = [make_pod('default/p%d' % i) for i in range(5)]
    placed = manifests.schedule(pods, ['z', 'a'])
    assert placed == {'default/p0': 'z', 'default/p1': 'a', 'default/p2': 'z',
                      'default/p3': 'a', 'default/p4': 'z'}
    assert manifests.schedule(list(reversed(pods)), ['z', 'a']) == placed


def test_schedule_refuses_unknown_node_name():
    with pytest.raises(SpecError) as info:
        manifests.schedule([make_pod('x/a', 'node9')], ['node1', 'node2'])
    assert str(info.value) == ("Pod x/a: spec.nodeName: 'node9' is not a node of the "
                               'inventory (nodes: node1, node2)')


def test_schedule_without_nodes_refuses_unpinned_pods():
    assert manifests.schedule([], []) == {}
    with pytest.raises(SpecError, match='Pod x/a: no node'):
        manifests.schedule([make_pod('x/a')], [])


def test_schedule_of_loaded_pods_honours_node_name(tmp_path):
    doc = pod('pinned', change=lambda d: d['spec'].update(nodeName='node2'))
    found = manifests.load([write(tmp_path / 'p.yaml', doc, pod('free'))])
    assert found.pods[0].node_name == 'node2'
    assert manifests.schedule(found.pods, ['node1', 'node2']) == {
        'default/pinned': 'node2', 'default/free': 'node1'}


def test_a_running_pod_stays_on_its_node_when_others_come(tmp_path):
    def pods_of(text):
        path = tmp_path / 'p.yaml'
        path.write_text(text)
        return manifests.load([str(path)]).pods
    doc = 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  %scontainers: [{name: c, image: i}]\n'
    before = manifests.schedule(pods_of(doc % ('m', '')), ['n1', 'n2'])
    assert before == {'default/m': 'n1'}
    grown = pods_of('\n---\n'.join([doc % ('a', 'nodeName: n1\n  '), doc % ('m', '')]))
    assert manifests.schedule(grown, ['n1', 'n2'], running=before)['default/m'] == 'n1'
    assert manifests.schedule(grown, ['n1', 'n2'])['default/m'] == 'n2'
