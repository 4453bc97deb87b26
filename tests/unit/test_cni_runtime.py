"""The runtime side of CNI (cni/runtime.py) against fake plugins: small
executables that log what they were asked and answer as their config says."""
import json
import os
import sys

import pytest
from ansible.module_utils.podnet.cni import runtime, spec

# A fake plugin: logs (verb, its type, prevResult's interfaces, env) to LOG,
# and on ADD appends an interface named for itself to prevResult. Its
# config's "fail" names a verb it fails with an error document, "garbage"
# one it answers with text that is not JSON.
FAKE = r'''#!%s
import json, os, sys
config = json.load(sys.stdin)
verb = os.environ['CNI_COMMAND']
with open(%r, 'a') as log:
    log.write(json.dumps({'verb': verb, 'type': config.get('type'), 'config': config,
                          'ifname': os.environ.get('CNI_IFNAME'), 'netns': os.environ.get('CNI_NETNS'),
                          'id': os.environ.get('CNI_CONTAINERID')}) + '\n')
if verb == 'VERSION':
    speaks = sys.argv[0] + '.speaks'  # VERSION's stdin is the cniVersion alone
    versions = open(speaks).read().split() if os.path.exists(speaks) else ['1.0.0', '1.1.0']
    print(json.dumps({'cniVersion': '1.1.0', 'supportedVersions': versions}))
    sys.exit(0)
if config.get('fail') == verb:
    print(json.dumps({'cniVersion': config['cniVersion'], 'code': 7, 'msg': 'bad ' + config['type'],
                      'details': 'field x'}))
    sys.exit(1)
if config.get('garbage') == verb:
    print('panic: not json')
    sys.exit(0)
if verb == 'ADD':
    result = config.get('prevResult') or {'cniVersion': config['cniVersion'], 'interfaces': [], 'ips': []}
    result['interfaces'].append({'name': config['type']})
    if config.get('ip'):
        result['ips'].append({'address': config['ip']})
    print(json.dumps(result))
'''


@pytest.fixture
def lab(tmp_path):
    """(Runtime, log reader, plugin maker) with CNI_PATH one tmp folder."""
    bin_dir, log = tmp_path / 'bin', tmp_path / 'log'
    bin_dir.mkdir()

    def plugin(name):
        path = bin_dir / name
        path.write_text(FAKE % (sys.executable, str(log)))
        path.chmod(0o755)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    for name in ('one', 'two', 'three'):
        plugin(name)
    return runtime.Runtime([str(tmp_path / 'missing'), str(bin_dir)], str(tmp_path / 'state')), calls, plugin


def chain(*plugins, version='1.0.0', **extra):
    return runtime.NetworkList(dict({'cniVersion': version, 'name': 'pods', 'plugins': list(plugins)}, **extra))


ATT = runtime.Attachment('abc123', '/run/netns/cni-abc123', 'eth0')


def test_add_chains_prev_result_and_caches_the_last(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one', 'ip': '10.42.0.5/24'}, {'type': 'two'}, {'type': 'three'})
    result = rt.add(net, ATT)
    assert [i['name'] for i in result['interfaces']] == ['one', 'two', 'three']
    log = calls()
    assert [c['verb'] for c in log] == ['ADD'] * 3
    assert 'prevResult' not in log[0]['config']
    assert [i['name'] for i in log[2]['config']['prevResult']['interfaces']] == ['one', 'two']
    assert log[1]['config']['name'] == 'pods' and log[1]['config']['cniVersion'] == '1.0.0'
    assert {(c['id'], c['ifname'], c['netns']) for c in log} == {('abc123', 'eth0', '/run/netns/cni-abc123')}
    assert rt.cached(net, ATT) == result
    assert [str(a) for a in rt.cached_attachments(net)] == ['abc123/eth0']


def test_0_4_0_prev_result_has_ip_versions(lab):
    rt, calls, _ = lab
    rt.add(chain({'type': 'one', 'ip': '10.42.0.5/24'}, {'type': 'two'}, version='0.4.0'), ATT)
    assert calls()[1]['config']['prevResult']['ips'] == [{'address': '10.42.0.5/24', 'version': '4'}]


def test_del_runs_in_reverse_with_the_cached_result_and_forgets_it(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, {'type': 'two'}, {'type': 'three'})
    result = rt.add(net, ATT)
    rt.delete(net, ATT)
    dels = [c for c in calls() if c['verb'] == 'DEL']
    assert [c['type'] for c in dels] == ['three', 'two', 'one']
    assert all(c['config']['prevResult'] == spec.result_for(result, '1.0.0') for c in dels)
    assert rt.cached(net, ATT) is None and not os.listdir(os.path.join(rt.cache_dir, 'results'))
    rt.delete(net, ATT)  # idempotent: no prevResult then
    assert all('prevResult' not in c['config'] for c in calls()[-3:])


def test_check_uses_the_cache_and_needs_one(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, {'type': 'two'})
    with pytest.raises(spec.CniError) as err:
        rt.check(net, ATT)
    assert err.value.code == spec.UNKNOWN_CONTAINER
    rt.add(net, ATT)
    rt.check(net, ATT)
    checks = [c for c in calls() if c['verb'] == 'CHECK']
    assert [c['type'] for c in checks] == ['one', 'two'] and all('prevResult' in c['config'] for c in checks)


def test_disable_check_checks_nothing(lab):
    rt, calls, _ = lab
    rt.check(chain({'type': 'one'}, disableCheck=True), ATT)
    assert calls() == []


def test_a_failing_plugin_undoes_the_chain_and_raises_its_error(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, {'type': 'two'}, {'type': 'three', 'fail': 'ADD'})
    with pytest.raises(spec.CniError) as err:
        rt.add(net, ATT)
    assert err.value.code == 7 and 'three: bad three' in str(err.value) and err.value.details == 'field x'
    log = calls()
    assert [(c['verb'], c['type']) for c in log] == [
        ('ADD', 'one'), ('ADD', 'two'), ('ADD', 'three'), ('DEL', 'three'), ('DEL', 'two'), ('DEL', 'one')]
    assert [i['name'] for i in log[3]['config']['prevResult']['interfaces']] == ['one', 'two']
    assert rt.cached(net, ATT) is None


def test_garbage_output_is_a_decode_error_and_leaves_nothing(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, {'type': 'two', 'garbage': 'ADD'})
    with pytest.raises(spec.CniError) as err:
        rt.add(net, ATT)
    assert err.value.code == spec.DECODE_FAILURE and 'two' in str(err.value) and 'panic' in err.value.details
    assert [c['verb'] for c in calls()][-2:] == ['DEL', 'DEL'] and rt.cached(net, ATT) is None


def test_a_failed_undo_is_named_in_the_error(lab):
    rt, _, _ = lab
    net = chain({'type': 'one', 'fail': 'DEL'}, {'type': 'two', 'fail': 'ADD'})
    with pytest.raises(spec.CniError) as err:
        rt.add(net, ATT)
    assert 'two: bad two' in str(err.value) and 'DEL after it failed' in err.value.details


def test_unknown_type_is_refused_before_any_plugin_runs(lab):
    rt, calls, _ = lab
    with pytest.raises(spec.CniError) as err:
        rt.add(chain({'type': 'one'}, {'type': 'nosuch'}), ATT)
    assert err.value.code == spec.INVALID_CONFIG and "'nosuch'" in str(err.value) and 'missing' in err.value.details
    assert calls() == []


def test_a_plugin_that_is_not_executable_is_missing(lab, tmp_path):
    rt, calls, _ = lab
    (tmp_path / 'bin' / 'two').chmod(0o644)
    with pytest.raises(spec.CniError) as err:
        rt.add(chain({'type': 'one'}, {'type': 'two'}), ATT)
    assert "'two'" in str(err.value) and calls() == []


@pytest.mark.parametrize('doc, field', [
    ({'cniVersion': '1.0.0', 'plugins': [{'type': 'one'}]}, 'name'),
    ({'cniVersion': '1.0.0', 'name': 'bad name', 'plugins': [{'type': 'one'}]}, 'name'),
    ({'cniVersion': '1.0.0', 'name': 'n', 'plugins': []}, 'plugins'),
    ({'cniVersion': '1.0.0', 'name': 'n'}, 'plugins'),
    ({'cniVersion': '1.0.0', 'name': 'n', 'plugins': [{'type': 'one'}, {}]}, 'plugins[1].type'),
    ({'cniVersion': '1.0.0', 'name': 'n', 'plugins': [{'type': '../one'}]}, 'plugins[0].type'),
    ({'name': 'n', 'plugins': [{'type': 'one'}]}, 'cniVersion'),
    ({'cniVersion': '1.0.0', 'name': 'n', 'disableCheck': 3, 'plugins': [{'type': 'one'}]}, 'disableCheck'),
    ({'cniVersion': '1.0.0', 'name': 'n', 'disableGC': [], 'plugins': [{'type': 'one'}]}, 'disableGC'),
    ({'cniVersions': '1.0.0', 'name': 'n', 'plugins': [{'type': 'one'}]}, 'cniVersions'),
    ([1], 'conflist'),
])
def test_an_invalid_conflist_is_error_7_naming_the_field(doc, field):
    with pytest.raises(spec.CniError) as err:
        runtime.NetworkList(doc)
    assert err.value.code == spec.INVALID_CONFIG and err.value.details.startswith(field + ':')


def test_text_that_is_not_json_is_a_decode_error():
    with pytest.raises(spec.CniError) as err:
        runtime.NetworkList.parse('{', 'x.conflist')
    assert err.value.code == spec.DECODE_FAILURE and 'x.conflist' in err.value.details


def test_unsupported_cni_version_is_error_1():
    with pytest.raises(spec.CniError) as err:
        chain({'type': 'one'}, version='0.3.1')
    assert err.value.code == spec.INCOMPATIBLE_VERSION
    with pytest.raises(spec.CniError) as err:
        runtime.NetworkList({'cniVersions': ['0.2.0', '9.0.0'], 'name': 'n', 'plugins': [{'type': 'one'}]})
    assert err.value.code == spec.INCOMPATIBLE_VERSION


def test_cni_versions_picks_the_newest_spoken():
    net = runtime.NetworkList({'cniVersions': ['0.4.0', '1.1.0', '2.0.0'], 'cniVersion': '0.4.0', 'name': 'n',
                               'plugins': [{'type': 'one'}]})
    assert net.version == '1.1.0'


def test_validate_asks_each_plugin_its_versions(lab, tmp_path):
    rt, calls, _ = lab
    rt.validate(chain({'type': 'one'}, {'type': 'two'}))
    assert [c['config'] for c in calls()] == [{'cniVersion': spec.SPEC_VERSION}] * 2
    (tmp_path / 'bin' / 'two.speaks').write_text('0.4.0')
    with pytest.raises(spec.CniError) as err:
        rt.validate(chain({'type': 'one'}, {'type': 'two'}, version='1.0.0'))
    assert err.value.code == spec.INCOMPATIBLE_VERSION and 'two' in err.value.details


def test_capabilities_reach_only_the_plugins_that_declare_them(lab):
    rt, calls, _ = lab
    att = runtime.Attachment('abc123', '/run/netns/x', capability_args={'portMappings': [{'hostPort': 80}]})
    rt.add(chain({'type': 'one'}, {'type': 'two', 'capabilities': {'portMappings': True}}), att)
    log = calls()
    assert 'runtimeConfig' not in log[0]['config']
    assert log[1]['config']['runtimeConfig'] == {'portMappings': [{'hostPort': 80}]}


def test_status_and_gc_run_only_from_1_1(lab):
    rt, calls, _ = lab
    rt.status(chain({'type': 'one'}))
    assert calls() == []
    rt.status(chain({'type': 'one'}, {'type': 'two'}, version='1.1.0'))
    assert [(c['verb'], c['id']) for c in calls()] == [('STATUS', None), ('STATUS', None)]


def test_status_not_ready_is_the_plugins_error(lab):
    rt, _, _ = lab
    with pytest.raises(spec.CniError) as err:
        rt.status(chain({'type': 'one', 'fail': 'STATUS'}, version='1.1.0'))
    assert 'one' in str(err.value)


def test_gc_deletes_stale_attachments_then_asks_each_plugin(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, {'type': 'two'}, version='1.1.0')
    keep, stale = ATT, runtime.Attachment('old999', '/run/netns/cni-old999')
    rt.add(net, keep)
    rt.add(net, stale)
    assert rt.gc(net, [keep]) == ['old999/eth0']
    log = calls()[4:]
    assert [(c['verb'], c['type'], c['id']) for c in log] == [
        ('DEL', 'two', 'old999'), ('DEL', 'one', 'old999'), ('GC', 'one', None), ('GC', 'two', None)]
    assert log[2]['config'][spec.VALID_ATTACHMENTS] == [{'containerID': 'abc123', 'ifname': 'eth0'}]
    assert [str(a) for a in rt.cached_attachments(net)] == ['abc123/eth0']


def test_disable_gc_still_deletes_stale_but_sends_no_gc(lab):
    rt, calls, _ = lab
    net = chain({'type': 'one'}, version='1.1.0', disableGC=True)
    rt.add(net, ATT)
    assert rt.gc(net, []) == ['abc123/eth0']
    assert [c['verb'] for c in calls()] == ['ADD', 'DEL']


@pytest.mark.parametrize('container_id, ifname', [('', 'eth0'), ('a b', 'eth0'), ('abc', 'x' * 16),
                                                  ('abc', 'a/b'), ('abc', '..'), ('abc', '')])
def test_bad_attachments_are_error_4(container_id, ifname):
    with pytest.raises(spec.CniError) as err:
        runtime.Attachment(container_id, '/run/netns/x', ifname)
    assert err.value.code == spec.INVALID_ENVIRONMENT


def test_interfaces_splits_host_and_sandbox_sides():
    result = {'interfaces': [{'name': 'cni0'}, {'name': 'veth1'}, {'name': 'eth0', 'sandbox': '/run/netns/x'}]}
    assert runtime.interfaces(result) == ({'name': 'veth1'}, {'name': 'eth0', 'sandbox': '/run/netns/x'})
