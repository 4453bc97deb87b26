"""Any state file on a node can be wrong: empty, garbage, binary, of the
wrong JSON type, or a folder. A run still reads the node, says which file
is wrong and why, and replaces it; a reset still removes it (issue 21)."""
import json
import os

import pytest
from ansible.module_utils.podnet.core import statefile
from ansible.module_utils.podnet.node import nodestate
from ansible.module_utils.podnet.pods.ipam import HostLocalIpam
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods.planner import Planner
from ansible.module_utils.podnet.pods.records import RecordStore
from ansible.module_utils.podnet.policy import policy_source
from samples import HEALTH, node_state, pod, state

BAD = {'garbage': b'{garbage', 'empty': b'', 'wrong type': b'[1,2]', 'binary': b'\x00\xffgarbage',
       'missing fields': b'{"namespace": "default", "name": "web"}'}
WHY = {'garbage': 'Expecting property name', 'empty': 'empty', 'wrong type': 'not a JSON object',
       'binary': 'not UTF-8 text', 'missing fields': 'missing or of the wrong type: containers',
       'folder': 'a folder, not a file'}


def corrupt(path, how):
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == 'folder':
        (path / 'inside').mkdir(parents=True)
    else:
        path.write_bytes(BAD[how])


def good_record(name='web'):
    return {k: v for k, v in state(pod(name)).items() if k not in HEALTH}


@pytest.mark.parametrize('how', sorted(WHY))
def test_an_unreadable_pod_record_is_named_and_the_others_are_read(tmp_path, how):
    """Regression: '{garbage', '' or '[1,2]' in a record stopped site.yml,
    --check and reset.yml with 'Expecting property name...', naming no file."""
    (tmp_path / 'pods').mkdir()
    (tmp_path / 'pods' / 'default_web.json').write_text(json.dumps(good_record()))
    bad = tmp_path / 'pods' / 'default_netexec-c.json'
    corrupt(bad, how)
    records, unreadable = nodestate.read_pod_records(str(tmp_path))
    assert list(records) == ['default/web']
    assert list(unreadable) == [str(bad)] and WHY[how] in unreadable[str(bad)]


def test_the_run_removes_an_unreadable_record_and_makes_its_pod_again(tmp_path):
    """Its sandbox and address, which no record owns now, are swept as
    those of a run cut short; the pod it stood for is created anew."""
    node = Planner(1450, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))
    web = state(pod('web'))
    current = node_state({'default/web': web}, sandboxes=[web['netns'], 'cni-of-the-lost-record'],
                         ipam={web['ip']: web['uid'], '10.42.1.3': 'the-lost-record'})
    current.unreadable = {str(tmp_path / 'pods' / 'default_db.json'): 'not UTF-8 text'}
    actions = node.plan(current, {'default/web': pod('web'), 'default/db': pod('db')})
    assert [(a.verb, a.target, a.reason) for a in actions if a.verb != 'guard'] == [
        ('forget_record', str(tmp_path / 'pods' / 'default_db.json'),
         'unreadable (not UTF-8 text): its pod is made again'),
        ('create', 'default/db', 'new pod'),
        ('forget_netns', 'cni-of-the-lost-record', 'no pod owns it'),
        ('release', '10.42.1.3', 'no pod of the-lost-record holds it')]
    folder = tmp_path / 'pods' / 'default_db.json'
    corrupt(folder, 'folder')
    from ansible.module_utils.podnet.core.reconcile import Action
    from ansible.module_utils.podnet.pods.runtime import PodRuntime
    PodRuntime(None, None, 1450, DEFAULT_PIDS_LIMIT, {}, (), None).do_forget_record(
        Action('forget_record', str(folder), 'unreadable'), None)
    assert not folder.exists()


@pytest.mark.parametrize('how', ['binary', 'folder'])
def test_an_unreadable_ipam_file_is_released_naming_it(tmp_path, how):
    """Regression: '\\x00\\xffgarbage' in an IPAM file failed the pods task
    with "'utf-8' codec can't decode...", naming no path; 'not a pod' was
    taken for an owner's id (hostile re-run of issue 21)."""
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/24')
    bad = tmp_path / 'ipam' / '10.42.1.0_24' / '10.42.1.3'
    corrupt(bad, how)
    owner = ipam.owners()['10.42.1.3']
    assert owner.startswith('unreadable %s (' % bad) and WHY[how] in owner
    ipam.release('10.42.1.3')
    assert not bad.exists()
    corrupt(bad, how)
    ipam.reserve('10.42.1.3', 'uid-1')
    assert ipam.owners() == {'10.42.1.3': 'uid-1'}


def test_text_that_names_no_owner_in_an_ipam_file_is_named_as_unreadable(tmp_path):
    """Regression (hostile re-run of issue 21): 'not a pod' was taken for
    an owner's id; --check said `no pod of not a pod holds it`."""
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/24')
    bad = tmp_path / 'ipam' / '10.42.1.0_24' / '10.42.1.3'
    bad.parent.mkdir(parents=True)
    bad.write_text('not a pod\n')
    assert ipam.owners()['10.42.1.3'] == 'unreadable %s (not an owner id and interface)' % bad
    bad.write_text('uid-1\neth0\n')
    assert ipam.owners()['10.42.1.3'] == 'uid-1'


def test_a_garbage_round_robin_mark_is_ignored_and_rewritten(tmp_path):
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/24')
    corrupt(tmp_path / 'ipam' / '10.42.1.0_24' / 'last_reserved_ip', 'binary')
    assert ipam.allocate('uid-1') == '10.42.1.2'
    assert (tmp_path / 'ipam' / '10.42.1.0_24' / 'last_reserved_ip').read_text() == '10.42.1.2'


@pytest.mark.parametrize('how', ['garbage', 'binary', 'folder', 'empty'])
def test_an_unreadable_pod_cidr_file_says_why_and_is_written_again(tmp_path, how):
    corrupt(tmp_path / 'pod-cidr', how)
    cidr, problem = nodestate.read_pod_cidr_checked(str(tmp_path))
    assert cidr is None and problem and nodestate.read_pod_cidr(str(tmp_path)) is None
    statefile.write_atomic(str(tmp_path / 'pod-cidr'), '10.42.1.0/24\n')
    assert nodestate.read_pod_cidr(str(tmp_path)) == '10.42.1.0/24'


@pytest.mark.parametrize('how', ['garbage', 'binary', 'folder', 'wrong type'])
def test_an_unreadable_policy_record_reads_as_none(tmp_path, how):
    corrupt(tmp_path / policy_source.FILE, how)
    assert policy_source.load(str(tmp_path)) is None
    assert statefile.read_text(str(tmp_path / policy_source.FILE)).startswith(
        '<unreadable' if how in ('binary', 'folder') else BAD[how].decode()[:1])


def test_a_lock_path_that_is_a_folder_is_replaced_by_a_run_and_reported(tmp_path):
    """Regression: a folder at /var/lib/podnet/lock failed every run with
    '[Errno 21] Is a directory' and never healed."""
    corrupt(tmp_path / 'lock', 'folder')
    with statefile.node_lock(str(tmp_path), create=False) as replaced:  # a check, a reset
        assert replaced == 'a folder where the lock file belongs'
    assert (tmp_path / 'lock').is_dir()  # a check changes nothing
    with statefile.node_lock(str(tmp_path)) as replaced:
        assert replaced == 'a folder where the lock file belongs'
    assert (tmp_path / 'lock').read_text() == '%d\n' % os.getpid()
    with statefile.node_lock(str(tmp_path)) as replaced:
        assert replaced is None


# -- what podnet owns, it watches: cni0's ports ----------------------------------
def test_a_port_on_cni0_that_is_no_pods_veth_is_taken_off_it(tmp_path):
    """Regression (issue 21): a veth 'rogue0' set master cni0 was reported by
    neither --check nor site.yml."""
    from ansible.module_utils.podnet.pods import reconciler as pods
    web = state(pod('web'))
    links = {'cni0': {'index': 3, 'IFLA_LINKINFO': {'IFLA_INFO_KIND': 'bridge'}},
             web['veth']: {'index': 4, 'IFLA_MASTER': 3}, 'rogue0': {'index': 5, 'IFLA_MASTER': 3},
             'eth0': {'index': 2}, 'other0': {'index': 6, 'IFLA_MASTER': 9}}
    assert pods.foreign_ports(links, 3, {'default/web': web}) == ['rogue0']
    current = node_state({'default/web': web})
    current.foreign_ports = ['rogue0']
    node = Planner(1450, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))
    assert [(a.verb, a.target, a.reason) for a in node.plan(current, {'default/web': pod('web')})] == [
        ('unbridge', 'rogue0', "on cni0, and no pod's veth")]


def test_a_port_podnet_cni_made_for_a_runtime_stays_on_cni0():
    """A container a CNI runtime added through podnet-cni is no rogue: its
    veth, named from its IPAM file's owner, stays on the bridge."""
    from ansible.module_utils.podnet.pods import reconciler as pods
    from ansible.module_utils.podnet.pods.ipam import attachment_ports
    attachments = attachment_ports({'10.42.1.9': 'cni/podnet/abc123/eth0', '10.42.1.7': 'a-pod-uid'})
    veth = attachments[0]['veth']
    links = {'cni0': {'index': 3}, veth: {'index': 4, 'IFLA_MASTER': 3}, 'rogue0': {'index': 5, 'IFLA_MASTER': 3}}
    assert [a['ip'] for a in attachments] == ['10.42.1.9']
    assert pods.foreign_ports(links, 3, {}, attachments) == ['rogue0']
