"""podnet-cni without root: the configuration and environment it refuses,
with the spec's code and a message naming the field or variable, before
anything changes; VERSION; prevResult merged; its own IPAM over a state
folder; a delegated IPAM plugin (a stand-in script); the server's
request framing; and the executable's way to podnet's code: the tree's,
an installed collection's (bin/build-collection's layout) and a VM's copy
(roles/cni/tasks/install.yml).
(tests/integration/test_cni_plugin.py runs every verb against a kernel.)"""
import functools
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.podnet.cni.spec import SUPPORTED_VERSIONS, CniError
from ansible.module_utils.podnet.cniplugin import addresses, guard, server, verbs, wiring
from ansible.module_utils.podnet.cniplugin.config import read_request
from ansible.module_utils.podnet.core import statefile
from ansible.module_utils.podnet.kernel import nft
from podnet_testlib import ROOT, staged_collection

PLUGIN = ROOT / 'roles' / 'cni' / 'files' / 'podnet-cni'
ENV = {'CNI_COMMAND': 'ADD', 'CNI_CONTAINERID': 'c1', 'CNI_NETNS': '/run/netns/c1', 'CNI_IFNAME': 'eth0',
       'CNI_PATH': '/usr/lib/cni'}


def conf(**fields):
    return dict({'cniVersion': '1.1.0', 'name': 'podnet', 'type': 'podnet-cni'}, **fields)


def call(config, **env):
    """(exit status, document) of a call that fails before the kernel."""
    variables = {k: v for k, v in dict(ENV, **env).items() if v is not None}
    out, status = verbs.handle(variables, config if isinstance(config, (str, bytes)) else json.dumps(config))
    return status, json.loads(out) if out else None


@pytest.mark.parametrize('config, env, code, named', [
    (conf(), {'CNI_COMMAND': None}, 4, 'CNI_COMMAND'),
    (conf(), {'CNI_COMMAND': 'add'}, 4, 'CNI_COMMAND'),
    ('{"cniVersion": "1.1.0"', {}, 6, 'stdin'),
    ('[]', {}, 6, 'JSON object'),
    (b'\xff\xfe', {}, 6, 'stdin'),
    ({'name': 'podnet', 'type': 'podnet-cni'}, {}, 7, 'cniVersion'),
    (conf(cniVersion='0.3.1'), {}, 1, '0.3.1'),
    (conf(cniVersion='2.0.0'), {}, 1, '2.0.0'),
    (conf(cniVersion='1.1'), {}, 6, '1.1'),
    (conf(cniVersion='1.0.0'), {'CNI_COMMAND': 'GC'}, 1, 'GC'),
    (conf(cniVersion='0.4.0'), {'CNI_COMMAND': 'STATUS'}, 1, 'STATUS'),
    ({'cniVersion': '1.1.0', 'name': 'podnet'}, {}, 7, "'type'"),
    (conf(name='-podnet'), {}, 7, '-podnet'),
    (conf(name='pod/net'), {}, 7, 'pod/net'),
    (conf(bridge='a-bridge-name-too-long'), {}, 7, 'bridge'),
    (conf(mtu='1450'), {}, 7, 'mtu'),
    (conf(mtu=True), {}, 7, 'mtu'),
    (conf(mtu=70000), {}, 7, 'mtu'),
    (conf(stateDir='relative/state'), {}, 7, 'stateDir'),
    (conf(ipam='host-local'), {}, 7, 'ipam'),
    (conf(ipam={'type': ''}), {}, 7, 'ipam.type'),
    (conf(ipam={'type': '../host-local'}), {}, 7, 'ipam.type'),
    (conf(ipam={'subnet': 'ten'}), {}, 7, 'ipam.subnet'),
    (conf(ipam={'subnet': '10.42.9.1/24'}), {}, 7, 'ipam.subnet'),
    (conf(ipam={'subnet': '10.42.9.0/31'}), {}, 7, 'ipam.subnet'),
    (conf(ipam={'subnet': '10.42.9.0/24'}, stateDir=7), {}, 7, 'stateDir'),
    (conf(ipam={'subnet': 'fd00::/64'}), {}, 7, 'ipam.subnet'),
    (conf(ipam={'ranges': []}), {}, 2, 'ipam.ranges = []'),
    (conf(dns=['10.43.0.10']), {}, 7, 'dns'),
    (conf(prevResult='none'), {}, 7, 'prevResult'),
    (conf(sourceGuard='pods'), {}, 7, 'sourceGuard'),
    (conf(**{'cni.dev/valid-attachments': [{'containerID': 'c1'}]}), {'CNI_COMMAND': 'GC'}, 7,
     'cni.dev/valid-attachments[0]'),
    (conf(), {'CNI_NETNS': None, 'CNI_IFNAME': ''}, 4, 'CNI_NETNS, CNI_IFNAME'),
    (conf(), {'CNI_PATH': None}, 4, 'CNI_PATH'),
    (conf(), {'CNI_COMMAND': 'DEL', 'CNI_CONTAINERID': None}, 4, 'CNI_CONTAINERID'),
    (conf(), {'CNI_COMMAND': 'CHECK', 'CNI_NETNS': None}, 4, 'CNI_NETNS'),
    (conf(), {'CNI_CONTAINERID': '_c1'}, 4, 'CNI_CONTAINERID'),
    (conf(), {'CNI_CONTAINERID': 'c1/../c2'}, 4, 'CNI_CONTAINERID'),
    (conf(), {'CNI_IFNAME': 'eth0:1'}, 4, 'CNI_IFNAME'),
    (conf(), {'CNI_IFNAME': 'e' * 16}, 4, 'CNI_IFNAME'),
])
def test_bad_input_is_refused_with_its_code_naming_the_field(config, env, code, named):
    status, error = call(config, **env)
    assert status == 1
    assert error['code'] == code, error
    assert named in error['msg'] + ' ' + error.get('details', ''), error
    assert error['cniVersion'] in SUPPORTED_VERSIONS


def test_an_error_speaks_the_config_s_version():
    assert call(conf(cniVersion='0.4.0', mtu=1))[1]['cniVersion'] == '0.4.0'


def test_version_answers_with_what_podnet_speaks():
    for version in SUPPORTED_VERSIONS:
        assert call({'cniVersion': version}, CNI_COMMAND='VERSION') == (
            0, {'cniVersion': version, 'supportedVersions': list(SUPPORTED_VERSIONS)})
    assert call('', CNI_COMMAND='VERSION', CNI_PATH=None)[1]['cniVersion'] == '1.1.0'
    assert call({'cniVersion': '9.9.9'}, CNI_COMMAND='VERSION')[1]['code'] == 1


def test_other_fields_are_ignored_and_defaults_apply():
    request = read_request(ENV, json.dumps(conf(runtimeConfig={'portMappings': []}, args={'x': 1})))
    assert (request.bridge, request.mtu, request.state_dir, request.delegate) == (
        'cni0', None, '/var/lib/podnet', None)
    assert request.attachment == 'cni/podnet/c1/eth0'


def test_prev_result_of_any_version_is_passed_on_with_ours_appended():
    earlier = {'cniVersion': '0.4.0', 'interfaces': [{'name': 'a0'}],
               'ips': [{'version': '4', 'address': '10.99.0.5/24', 'interface': 0}],
               'dns': {'nameservers': ['10.43.0.10']}}
    request = read_request(ENV, json.dumps(conf(cniVersion='0.4.0', prevResult=earlier)))
    made = verbs.wiring.Wiring('/run/netns/c1', 'eth0', 'veth12345678', '02:00:00:00:00:03', 1450,
                               '10.42.9.2/24', [('0.0.0.0/0', '10.42.9.1')], 7)
    result = verbs._merged(request, made, '02:00:00:00:00:04',
                           addresses.Lease('10.42.9.2/24', '10.42.9.1', made.routes))
    assert [i['name'] for i in result['interfaces']] == ['a0', 'veth12345678', 'eth0']
    assert result['ips'] == [{'address': '10.99.0.5/24', 'interface': 0},
                             {'address': '10.42.9.2/24', 'interface': 2, 'gateway': '10.42.9.1'}]
    assert result['dns'] == earlier['dns'] and 'mtu' not in result['interfaces'][2]


def own(tmp_path, command='ADD', container='c1', cidr='10.42.9.0/30', **fields):
    state = tmp_path / 'state'
    state.mkdir(exist_ok=True)
    (state / 'pod-cidr').write_text(cidr + '\n')
    env = dict(ENV, CNI_COMMAND=command, CNI_CONTAINERID=container)
    return addresses.for_request(read_request(env, json.dumps(conf(stateDir=str(state), **fields))))


def test_own_ipam_shares_the_pods_files_and_frees_only_its_own(tmp_path):
    folder = tmp_path / 'state' / 'ipam' / '10.42.9.0_30'
    assert own(tmp_path).status() is None
    first = own(tmp_path).lease()
    assert first == addresses.Lease('10.42.9.2/30', '10.42.9.1', [('0.0.0.0/0', '10.42.9.1')])
    assert (folder / '10.42.9.2').read_text() == 'cni/podnet/c1/eth0\neth0\n'
    assert 'no free address' in own(tmp_path).status()  # a /30 holds one pod
    with pytest.raises(CniError) as exhausted:
        own(tmp_path, container='c2').lease()
    assert exhausted.value.code == 103
    own(tmp_path, 'DEL', container='c2').release()  # not its address: kept
    assert (folder / '10.42.9.2').exists()
    own(tmp_path, 'DEL').release()
    own(tmp_path, 'DEL').release()
    assert not (folder / '10.42.9.2').exists()


def test_own_ipam_gc_releases_what_is_not_valid(tmp_path):
    for container in ('c1', 'c2'):
        own(tmp_path, container=container, cidr='10.42.9.0/29').lease()
    folder = tmp_path / 'state' / 'ipam' / '10.42.9.0_29'
    (folder / '10.42.9.6').write_text('8f0c6b1e-pod-uid\neth0\n')  # a pod's: never the runtime's
    gone = own(tmp_path, 'GC', cidr='10.42.9.0/29').collect({('c1', 'eth0')})
    assert sorted(p.name for p in folder.iterdir() if p.name[0].isdigit()) == ['10.42.9.2', '10.42.9.6']
    assert gone == [addresses.attachment_veth('cni/podnet/c2/eth0')]


def test_gc_of_another_network_never_frees_a_pod_a_podnet_cni_chain_wired(tmp_path):
    """The pods module's chain (network podnet-cni) and podman's network
    (podnet) share the IPAM files: a GC of podnet, whose name begins the
    other's, keeps the pods' addresses; a GC of podnet-cni that lists them
    keeps them too."""
    own(tmp_path, container='c1', cidr='10.42.9.0/29').lease()
    own(tmp_path, container='pod-uid', cidr='10.42.9.0/29', name='podnet-cni').lease()
    folder = tmp_path / 'state' / 'ipam' / '10.42.9.0_29'
    assert own(tmp_path, 'GC', cidr='10.42.9.0/29').collect(set()) == [addresses.attachment_veth('cni/podnet/c1/eth0')]
    assert own(tmp_path, 'GC', cidr='10.42.9.0/29', name='podnet-cni').collect({('pod-uid', 'eth0')}) == []
    assert [p.read_text() for p in folder.iterdir() if p.name[0].isdigit()] == ['cni/podnet-cni/pod-uid/eth0\neth0\n']


def test_an_add_whose_caller_renders_the_guard_leaves_the_node_lock_alone(tmp_path, monkeypatch):
    """Regression: the pods module holds the node's lock for its whole run
    and runs a podnet-cni chain's ADD, whose refresh of the source guard
    (guard.py) waited for that lock from another process until it ran out
    (a minute, then the ADD failed). Its list says sourceGuard caller: the
    ADD leaves the guard, and the lock, to it."""
    monkeypatch.setattr(nft, 'table_exists', lambda family, name: True)  # a node with pods has the guard
    monkeypatch.setattr(guard, 'node_lock', functools.partial(statefile.node_lock, wait=0.3))
    with statefile.node_lock(str(tmp_path / 'state')):  # the pods module's run
        ipam = own(tmp_path, sourceGuard='caller')
        verbs._guarded(ipam.request, ipam, wiring.Housekeeping())
        ipam = own(tmp_path)  # a runtime's ADD (podman) renders the guard: it waits
        with pytest.raises(CniError) as waited:
            verbs._guarded(ipam.request, ipam, wiring.Housekeeping())
    assert 'another podnet run' in waited.value.details and ipam.request.guarded_by == 'plugin'


def test_no_pod_cidr_is_try_again_later_and_not_ready(tmp_path):
    env = dict(ENV)
    request = read_request(env, json.dumps(conf(stateDir=str(tmp_path))))
    with pytest.raises(CniError) as error:
        addresses.for_request(request).lease()
    assert error.value.code == 11 and 'pod-cidr' in error.value.details
    assert 'no pod CIDR' in addresses.for_request(request).status()
    addresses.for_request(request).release()  # DEL with nothing to free


STAND_IN = '''#!/bin/sh
read -r conf
echo "$CNI_COMMAND $conf" >> %(log)s
case "$CNI_COMMAND" in
  ADD) echo '{"cniVersion": "1.0.0", "ips": [{"address": "10.42.9.77/24", "gateway": "10.42.9.1"}],
              "routes": [{"dst": "10.96.0.0/12"}]}' ;;
  STATUS|GC) echo '{"code": 4, "msg": "unknown CNI_COMMAND"}'; exit 1 ;;
esac
'''


def test_a_delegated_ipam_plugin_gets_the_same_call_as_1_0_0(tmp_path):
    log = tmp_path / 'calls'
    plugin = tmp_path / 'stand-in'
    plugin.write_text(STAND_IN % {'log': log})
    plugin.chmod(0o755)

    def delegated(command):
        env = dict(ENV, CNI_COMMAND=command, CNI_PATH='/nowhere:%s' % tmp_path)
        return addresses.for_request(read_request(env, json.dumps(conf(ipam={'type': 'stand-in', 'x': 1}))))
    lease = delegated('ADD').lease()
    assert lease == addresses.Lease('10.42.9.77/24', '10.42.9.1',
                                    [('10.96.0.0/12', '10.42.9.1'), ('0.0.0.0/0', '10.42.9.1')])
    delegated('DEL').release()
    assert delegated('STATUS').status() is None  # a plugin before 1.1.0 has no STATUS
    assert delegated('GC').collect(set()) == []
    calls = [line.split(' ', 1) for line in log.read_text().splitlines()]
    assert [c for c, _ in calls] == ['ADD', 'DEL', 'STATUS', 'GC']
    assert [json.loads(c)['cniVersion'] for _, c in calls] == ['1.0.0', '1.0.0', '1.1.0', '1.1.0']
    assert all(json.loads(c)['ipam'] == {'type': 'stand-in', 'x': 1} for _, c in calls)


def test_a_delegated_plugin_s_error_is_passed_on():
    env = dict(ENV, CNI_PATH='/usr/bin')
    request = read_request(env, json.dumps(conf(ipam={'type': 'false'})))
    with pytest.raises(CniError) as error:
        addresses.for_request(request).lease()
    assert error.value.code == 6 and 'false' in error.value.msg


def test_the_server_reads_a_request_as_the_shim_frames_it():
    env = b'CNI_COMMAND=ADD\0CNI_IFNAME=eth0\0EMPTY=\0'
    assert server.parse(struct.pack('>I', len(env)) + env + b'{"a": 1}') == (
        {'CNI_COMMAND': 'ADD', 'CNI_IFNAME': 'eth0', 'EMPTY': ''}, b'{"a": 1}')
    for cut in (b'', b'\0\0', struct.pack('>I', 99) + b'X=1\0'):
        with pytest.raises(ValueError):
            server.parse(cut)


def shim(path, stdin, **env):
    variables = {'PATH': os.environ['PATH'], 'PODNET_CNI_SERVER': '0', **env}
    return subprocess.run([str(path)], input=stdin, capture_output=True, text=True, env=variables, timeout=60)


def test_the_executable_finds_podnet_through_a_symlink(tmp_path):
    link = tmp_path / 'podnet-cni'
    link.symlink_to(PLUGIN)
    done = shim(link, '{"cniVersion": "1.0.0"}', CNI_COMMAND='VERSION')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)['supportedVersions'] == list(SUPPORTED_VERSIONS)
    done = shim(link, '{', CNI_COMMAND='ADD')
    assert done.returncode == 1 and json.loads(done.stdout)['code'] == 6


def test_the_executable_without_podnet_says_so_as_a_cni_error(tmp_path):
    if os.path.isdir('/usr/lib/podnet/module_utils'):
        pytest.skip('this machine has podnet in /usr/lib/podnet')
    copy = tmp_path / 'podnet-cni'
    shutil.copy(PLUGIN, copy)
    done = shim(copy, '{}', CNI_COMMAND='VERSION')
    assert done.returncode == 1
    assert json.loads(done.stdout)['code'] == 100 and 'PODNET_ROOT' in json.loads(done.stdout)['details']
    assert json.loads(shim(copy, '{"cniVersion": "1.0.0"}', CNI_COMMAND='VERSION', PODNET_ROOT=str(ROOT)).stdout)[
        'cniVersion'] == '1.0.0'


@pytest.fixture(scope='module')
def collection(tmp_path_factory):
    """The collection's folder, as it ships."""
    return staged_collection(tmp_path_factory.mktemp('build'))


def answers_version(plugin, **env):
    done = shim(plugin, '{"cniVersion": "1.0.0"}', CNI_COMMAND='VERSION', **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)['supportedVersions'] == list(SUPPORTED_VERSIONS)


def test_the_collections_executable_finds_the_collections_code_through_a_symlink(collection, tmp_path):
    """A lab node's link into an installed collection: plugins/module_utils,
    imported by the collection's name."""
    link = tmp_path / 'podnet-cni'
    link.symlink_to(collection / 'roles' / 'cni' / 'files' / 'podnet-cni')
    assert answers_version(link)
    done = shim(link, '{', CNI_COMMAND='ADD')
    assert done.returncode == 1 and json.loads(done.stdout)['code'] == 6
    assert answers_version(tmp_path / 'podnet-cni', PODNET_ROOT=str(collection))


@pytest.mark.parametrize('install', ['tree', 'collection'])
def test_a_vms_copy_runs_from_either_install(install, collection, tmp_path):
    """roles/cni/tasks/install.yml's two copies, as each install ships the
    role: the code from where that install keeps it, to <home>/module_utils;
    the plugin to <home>/roles/cni/files."""
    role = (ROOT if install == 'tree' else collection) / 'roles' / 'cni'
    home = tmp_path / 'home'
    for task in yaml.safe_load((role / 'tasks' / 'install.yml').read_text()):
        copy = task['ansible.builtin.copy']
        source = role / 'files' / copy['src'].replace('{{ role_path }}', str(role))
        target = Path(copy['dest'].replace('{{ podnet_cni_vm_home }}', str(home)))
        if source.is_dir():
            shutil.copytree(source, target / source.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    (tmp_path / 'podnet-cni').symlink_to(home / 'roles' / 'cni' / 'files' / 'podnet-cni')
    assert answers_version(tmp_path / 'podnet-cni')
