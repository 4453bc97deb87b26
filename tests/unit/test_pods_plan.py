"""NodePods.plan() over crafted current state (as read_current() returns
it), with the node's sandboxes given by a fake list_netns; spec_hash and
veth_name."""
import re

import pytest
from ansible.module_utils.podnet import pods
from ansible.module_utils.podnet.pods import NodePods, spec_hash, veth_name

MTU = 1450


def pod(name, labels=None, argv=('/bin/sleep', '3600')):
    return {'namespace': 'default', 'name': name, 'labels': labels or {'app': name},
            'containers': [{'name': 'main', 'argv': list(argv), 'env': {}, 'working_dir': None,
                            'ports': []}]}


def state(wanted, uid='11111111-2222', **changes):
    """A healthy pod's state as read_current() returns it."""
    found = {'namespace': wanted['namespace'], 'name': wanted['name'], 'uid': uid,
             'netns': 'cni-' + uid, 'veth': veth_name(uid), 'ip': '10.42.1.2',
             'spec_hash': spec_hash(wanted), 'labels': dict(wanted['labels']),
             'containers': {'main': {'pid': 200, 'start': 5000}},
             'pause': {'pid': 100, 'start': 4000}, 'problems': [], 'dead': [], 'mtu_now': MTU}
    found.update(changes)
    return found


@pytest.fixture
def netns(monkeypatch):
    """The cni-* sandboxes the node has: set netns.names, default none."""
    class Sandboxes:
        names = []
    monkeypatch.setattr(pods, 'list_netns', lambda: list(Sandboxes.names))
    return Sandboxes


@pytest.fixture
def node(tmp_path, netns):
    return NodePods(str(tmp_path), '10.42.1.0/24', MTU)


def test_new_pod_is_created(node):
    assert node.plan({}, {'default/web': pod('web')}) == [('create', 'default/web', 'new pod')]


def test_healthy_unchanged_pod_needs_nothing(node, netns):
    web = pod('web')
    netns.names = ['cni-11111111-2222']
    assert node.plan({'default/web': state(web)}, {'default/web': web}) == []


def test_changed_containers_recreate_the_pod(node):
    old, new = pod('web'), pod('web', argv=['/bin/sleep', '60'])
    assert node.plan({'default/web': state(old)}, {'default/web': new}) == [
        ('recreate', 'default/web', 'containers changed')]


def test_changed_labels_only_relabel(node):
    old, new = pod('web'), pod('web', labels={'app': 'web', 'tier': 'front'})
    assert node.plan({'default/web': state(old)}, {'default/web': new}) == [
        ('relabel', 'default/web', 'labels changed')]


def test_dead_container_is_restarted_by_name(node):
    web = pod('web')
    actions = node.plan({'default/web': state(web, dead=['main'])}, {'default/web': web})
    assert actions == [('restart', 'default/web', 'container main exited')]


def test_wrong_mtu_is_set(node):
    web = pod('web')
    actions = node.plan({'default/web': state(web, mtu_now=1500)}, {'default/web': web})
    assert actions == [('set_mtu', 'default/web', 'MTU 1500, want 1450')]


def test_broken_sandbox_is_recreated_naming_the_problems(node):
    web = pod('web')
    broken = state(web, problems=['pause process gone', 'sandbox cni-11111111-2222 gone'],
                   dead=['main'], mtu_now=None)
    assert node.plan({'default/web': broken}, {'default/web': web}) == [
        ('recreate', 'default/web', 'pause process gone; sandbox cni-11111111-2222 gone')]


def test_unwanted_pod_is_deleted_before_anything_else(node):
    old, new = pod('old'), pod('new')  # 'default/new' sorts before 'default/old'
    actions = node.plan({'default/old': state(old)}, {'default/new': new})
    assert actions == [('delete', 'default/old', 'not wanted on this node'),
                       ('create', 'default/new', 'new pod')]


def test_a_sandbox_no_state_owns_is_forgotten(node, netns):
    web = pod('web')
    netns.names = ['cni-11111111-2222', 'cni-orphan']
    assert node.plan({'default/web': state(web)}, {'default/web': web}) == [
        ('forget_netns', 'cni-orphan', 'no pod owns it')]


def test_the_sandbox_of_a_pod_being_deleted_is_not_forgotten_separately(node, netns):
    netns.names = ['cni-11111111-2222']
    assert node.plan({'default/web': state(pod('web'))}, {}) == [
        ('delete', 'default/web', 'not wanted on this node')]


def test_spec_hash_ignores_labels_but_not_containers():
    assert spec_hash(pod('web', labels={'a': 'b'})) == spec_hash(pod('web', labels={'c': 'd'}))
    assert spec_hash(pod('web')) != spec_hash(pod('web', argv=['/bin/true']))


def test_veth_name_is_veth_and_8_hex_stable_per_uid():
    name = veth_name('0c9d6a7e-1f8b-4c2e-9a51-3b7d2f0e4a11')
    assert re.fullmatch('veth[0-9a-f]{8}', name)
    assert len(name) <= 15
    assert name == veth_name('0c9d6a7e-1f8b-4c2e-9a51-3b7d2f0e4a11')
    assert name != veth_name('another-uid')


def test_node_pods_constructor_does_no_io(tmp_path):
    NodePods(str(tmp_path / 'absent'), '10.42.1.0/24', MTU)
    assert not (tmp_path / 'absent').exists()


def test_an_address_whose_owner_is_gone_is_released(tmp_path, monkeypatch):
    monkeypatch.setattr('ansible.module_utils.podnet.pods.list_netns', lambda: [])
    node = pods.NodePods(str(tmp_path), '10.42.1.0/24', 1450)
    leaked = node.ipam.allocate('uid-of-a-crashed-create')
    assert node.plan({}, {}) == [('release', leaked, 'its owner uid-of-a-crashed-create is gone')]


def test_the_folder_of_an_earlier_pod_cidr_is_forgotten(node, tmp_path):
    from ansible.module_utils.podnet.ipam import HostLocalIpam
    HostLocalIpam(str(tmp_path), '10.42.7.0/24').allocate('gone')
    assert node.plan({}, {}) == [('forget_ipam', str(tmp_path / 'ipam' / '10.42.7.0_24'),
                                  'an earlier pod CIDR')]


def test_a_never_restart_pod_stays_down(node, netns):
    web = dict(pod('web'), restart_policy='Never')
    netns.names = ['cni-11111111-2222']
    assert node.plan({'default/web': state(web, dead=['main'])}, {'default/web': web}) == []
