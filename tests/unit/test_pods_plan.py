"""Planner.plan() over crafted node state (as PodsReconciler.read() returns
it): records and their health, sandboxes, IPAM and the source guard;
spec_hash, veth_name and hostname."""
import re

import pytest
from ansible.module_utils.podnet.core.reconcile import Action
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.pods import srcguard
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods.health import mtu_seen
from ansible.module_utils.podnet.pods.planner import Planner
from ansible.module_utils.podnet.pods.reconciler import PodsReconciler
from ansible.module_utils.podnet.pods.records import RecordStore, hostname, spec_hash, veth_name
from samples import MTU, node_state, pod, state

GUARD = Action('guard', srcguard.TABLE, 'pods changed')


@pytest.fixture
def node(tmp_path):
    return Planner(MTU, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))


def test_new_pod_is_created(node):
    assert node.plan(node_state(), {'default/web': pod('web')}) == [
        ('create', 'default/web', 'new pod'), GUARD]


def test_healthy_unchanged_pod_needs_nothing(node):
    web = pod('web')
    assert node.plan(node_state({'default/web': state(web)}), {'default/web': web}) == []


def test_changed_containers_recreate_the_pod(node):
    old, new = pod('web'), pod('web', argv=['/bin/sleep', '60'])
    assert node.plan(node_state({'default/web': state(old)}), {'default/web': new}) == [
        ('recreate', 'default/web', 'containers changed'), GUARD]


def test_changed_labels_only_relabel(node):
    old, new = pod('web'), pod('web', labels={'app': 'web', 'tier': 'front'})
    assert node.plan(node_state({'default/web': state(old)}), {'default/web': new}) == [
        ('relabel', 'default/web', 'labels changed')]


def test_dead_container_is_restarted_by_name(node):
    web = pod('web')
    actions = node.plan(node_state({'default/web': state(web, dead=['main'])}), {'default/web': web})
    assert actions == [('restart', 'default/web', 'container main exited')]


def test_a_container_the_oom_killer_ended_is_restarted_saying_so(node):
    web = pod('web')
    web['containers'].append(dict(web['containers'][0], name='side'))
    record = state(web, dead=['main', 'side'], oom=['main'])
    actions = node.plan(node_state({'default/web': record}), {'default/web': web})
    assert actions == [('restart', 'default/web', 'container main exited (OOMKilled), side exited')]


def test_a_pod_cgroup_no_record_names_is_swept(node):
    web = pod('web')
    current = node_state({'default/web': state(web)})
    current.cgroups = {'11111111-2222': 'kubepods/besteffort/pod11111111-2222',
                       'ab-cd': 'kubepods/burstable/podab-cd'}
    assert node.plan(current, {'default/web': web}) == [
        ('forget_cgroup', 'kubepods/burstable/podab-cd', 'no pod owns it: what runs there is killed')]


def test_wrong_mtu_is_set(node):
    web = pod('web')
    actions = node.plan(node_state({'default/web': state(web, mtu_now=1500)}), {'default/web': web})
    assert actions == [('set_mtu', 'default/web', 'MTU 1500, want 1450')]


def test_broken_sandbox_is_recreated_naming_the_problems(node):
    web = pod('web')
    broken = state(web, problems=['eth0 has no address, want 10.42.1.2/24',
                                  'default route via nothing, want via 10.42.1.1'],
                   dead=['main'], mtu_now=None)
    assert node.plan(node_state({'default/web': broken}), {'default/web': web}) == [
        ('recreate', 'default/web', 'eth0 has no address, want 10.42.1.2/24; '
         'default route via nothing, want via 10.42.1.1'), GUARD]


def test_unwanted_pod_is_deleted_before_anything_else(node):
    old, new = pod('old'), pod('new')  # 'default/new' sorts before 'default/old'
    actions = node.plan(node_state({'default/old': state(old)}), {'default/new': new})
    assert actions == [('delete', 'default/old', 'not wanted on this node'),
                       ('create', 'default/new', 'new pod'), GUARD]


def test_a_sandbox_no_state_owns_is_forgotten(node):
    web = pod('web')
    current = node_state({'default/web': state(web)}, sandboxes=['cni-11111111-2222', 'cni-orphan'])
    assert node.plan(current, {'default/web': web}) == [('forget_netns', 'cni-orphan', 'no pod owns it')]


def test_the_sandbox_of_a_pod_being_deleted_is_not_forgotten_separately(node):
    assert node.plan(node_state({'default/web': state(pod('web'))}), {}) == [
        ('delete', 'default/web', 'not wanted on this node'), GUARD]


def test_an_address_whose_owner_is_gone_is_released(node):
    current = node_state(ipam={'10.42.1.9': 'uid-of-a-crashed-create'})
    assert node.plan(current, {}) == [
        ('release', '10.42.1.9', 'no pod of uid-of-a-crashed-create holds it')]


def test_an_address_podnet_cni_gave_a_runtime_is_left_to_the_runtime(node):
    """A container a CNI runtime added through podnet-cni holds its address
    in the same IPAM files: the pods module's sweep never frees it."""
    current = node_state(ipam={'10.42.1.9': 'cni/podnet/abc123/eth0'})
    assert node.plan(current, {}) == []


def test_the_source_guard_lets_podnet_cni_attachments_send(node):
    """The pods module renders the guard with the attachments podnet-cni
    made (from the IPAM files), so its run does not mute a runtime's
    containers: their ports get a chain with their MAC and address."""
    from ansible.module_utils.podnet.pods.ipam import attachment_ports
    owners = {'10.42.1.9': 'cni/podnet/abc123/eth0'}
    current = node_state(ipam=owners)
    current.attachments = attachment_ports(owners)
    assert node.plan(current, {}) == [('guard', srcguard.TABLE, 'the source guard differs from the pods')]
    current.guard = nft.wanted_table(*srcguard.ruleset(current.attachments))
    assert node.plan(current, {}) == []


def test_a_pod_a_podnet_cni_chain_wired_is_one_port_of_the_guard_and_keeps_its_address(node):
    """Regression: such a pod is a record and an attachment at once (its
    IPAM file's owner, cni/podnet-cni/<uid>/eth0, names the veth, MAC and
    address its record took from the ADD): the guard got two chains of one
    name, never matched what nft lists, and every run rendered it again.
    Its address is the chain's to free (DEL), never the sweep's; the port
    of podman's container beside it stays in the guard."""
    from ansible.module_utils.podnet.pods.ipam import attachment_mac, attachment_ports, attachment_veth
    owner = 'cni/podnet-cni/11111111-2222/eth0'
    web = pod('web')
    record = state(web, veth=attachment_veth(owner), mac=attachment_mac(owner), cni={'name': 'podnet-cni'})
    owners = {'10.42.1.2': owner, '10.42.1.9': 'cni/podnet/abc123/eth0'}
    podman = attachment_ports(owners)[1:]
    current = node_state({'default/web': record}, ipam=owners,
                         guard=nft.wanted_table(*srcguard.ruleset([record] + podman)))
    current.attachments = attachment_ports(owners)
    assert node.plan(current, {'default/web': web}) == []
    chains, _ = srcguard.ruleset([record], attachments=current.attachments)
    assert sorted(c['name'] for c in chains) == sorted(['ports', record['veth'], podman[0]['veth']])
    from ansible.module_utils.podnet.pods.reconciler import foreign_ports
    links = {'cni0': {'index': 3}, record['veth']: {'index': 4, 'IFLA_MASTER': 3},
             podman[0]['veth']: {'index': 5, 'IFLA_MASTER': 3}}
    assert foreign_ports(links, 3, {'default/web': record}, current.attachments) == []


def test_a_lost_ipam_file_of_a_running_pod_is_reserved_again(node):
    """Regression: `rm -rf ipam/*` was changed=0, and the next pod got an
    address a running pod held."""
    web = pod('web')
    current = node_state({'default/web': state(web)}, ipam={})
    assert node.plan(current, {'default/web': web}) == [
        ('reserve', 'default/web', 'IPAM lost address 10.42.1.2')]


def test_two_pods_on_one_address_the_one_ipam_does_not_name_is_recreated(node):
    a, b = pod('a'), pod('b')
    records = {'default/a': state(a, uid='uid-a'), 'default/b': state(b, uid='uid-b')}
    current = node_state(records, ipam={'10.42.1.2': 'uid-b'})
    assert node.plan(current, {'default/a': a, 'default/b': b}) == [
        ('recreate', 'default/a', 'address 10.42.1.2 is also held by default/b'), GUARD]


def test_releases_come_before_creates_in_apply_order():
    """Regression: a run killed while creating 240 pods left the CIDR
    'exhausted' for ever, as leaked addresses were released after creates."""
    from ansible.module_utils.podnet.pods.runtime import PHASES
    order = [verb for phase in PHASES for verb in phase]
    assert order.index('release') < order.index('create')
    assert order.index('forget_netns') < order.index('create')
    assert order.index('reserve') < order.index('create')


def test_the_folder_of_an_earlier_pod_cidr_is_forgotten(node, tmp_path):
    folder = str(tmp_path / 'ipam' / '10.42.7.0_24')
    assert node.plan(node_state(stale=[folder]), {}) == [('forget_ipam', folder, 'an earlier pod CIDR')]


def test_a_never_restart_pod_stays_down(node):
    web = dict(pod('web'), restart_policy='Never')
    assert node.plan(node_state({'default/web': state(web, dead=['main'])}), {'default/web': web}) == []


def test_a_flushed_source_guard_is_restored(node):
    web = pod('web')
    current = node_state({'default/web': state(web)}, guard='')
    assert node.plan(current, {'default/web': web}) == [
        ('guard', srcguard.TABLE, 'the source guard differs from the pods')]


def test_spec_hash_ignores_labels_but_not_containers():
    assert spec_hash(pod('web', labels={'a': 'b'})) == spec_hash(pod('web', labels={'c': 'd'}))
    assert spec_hash(pod('web')) != spec_hash(pod('web', argv=['/bin/true']))


def test_veth_name_is_veth_and_8_hex_stable_per_uid():
    name = veth_name('0c9d6a7e-1f8b-4c2e-9a51-3b7d2f0e4a11')
    assert re.fullmatch('veth[0-9a-f]{8}', name)
    assert len(name) <= 15
    assert name == veth_name('0c9d6a7e-1f8b-4c2e-9a51-3b7d2f0e4a11')
    assert name != veth_name('another-uid')


def test_hostname_is_the_planned_one_or_the_name_cut_as_kubernetes_does():
    """Regression: a 100-character pod name failed with sethostname EINVAL."""
    assert hostname({'name': 'web', 'hostname': 'given'}) == 'given'
    long = 'a' * 62 + '-b' + 'c' * 36
    assert hostname({'name': long}) == 'a' * 62
    assert len(hostname({'name': 'x' * 250})) == 63


def test_the_pods_reconciler_constructor_does_no_io(tmp_path):
    PodsReconciler(str(tmp_path / 'absent'), '10.42.1.0/24', MTU, run=None, hierarchies={})
    assert not (tmp_path / 'absent').exists()


def test_the_diff_names_changed_commands_not_running_to_running(tmp_path):
    """Regression: the diff said "running" -> "running" when containers changed."""
    old, new = pod('web'), pod('web', argv=['/bin/sleep', '60'])
    current = node_state({'default/web': state(old, commands={'main': ['/bin/sleep', '3600']})})
    pods = PodsReconciler(str(tmp_path), '10.42.1.0/24', MTU, None, {'default/web': new}, hierarchies={})
    before, after = pods.show(current), pods.show_wanted(current)
    assert before['default/web']['containers'] == {'main': '/bin/sleep 3600 (running)'}
    assert after['default/web']['containers'] == {'main': '/bin/sleep 60 (running)'}


def test_a_wrong_mtu_on_either_end_of_the_veth_is_seen():
    """Regression: a host-side veth set to 1400 under a right eth0 was
    neither detected nor healed."""
    assert mtu_seen(1400, 1450, 1450) == 1400
    assert mtu_seen(1450, 1400, 1450) == 1400
    assert mtu_seen(1450, 1450, 1450) == 1450


def test_the_guard_drops_every_port_without_a_pod_where_cni0_is_the_only_bridge():
    """Regression (issue 21): the catch-all matched only iifname "veth*", so
    frames from a foreign port on cni0 ('rogue0') were not checked at all.
    With bridges of the node's own, their ports are left alone."""
    from ansible.module_utils.podnet.pods import reconciler as pods
    records = [state(pod('web'))]
    assert nft.describe(*srcguard.ruleset(records))['ports'][-1] == 'drop'
    assert nft.describe(*srcguard.ruleset(records, sole_bridge=False))['ports'][-1] == 'iifname "veth*" drop'
    bridge, veth = Link(kind='bridge'), Link(kind='veth')
    assert pods.sole_bridge({'cni0': bridge, 'eth0': Link(), 'veth0': veth}) is True
    assert pods.sole_bridge({'cni0': bridge, 'docker0': bridge}) is False


class Link(dict):
    """A link message as pyroute2 gives it: get() takes a path of NLA names."""

    def __init__(self, kind=None):
        super().__init__(IFLA_LINKINFO={'IFLA_INFO_KIND': kind} if kind else None)

    def get(self, key, default=None):
        if isinstance(key, tuple):
            return (dict.get(self, key[0]) or {}).get(key[1], default)
        return dict.get(self, key, default)


def test_a_changed_pids_limit_is_set_on_running_pods(node):
    """Regression: podnet_pod_pids_limit changed nothing on running pods
    (and a restart then changed it part-way)."""
    web = pod('web')
    record = state(web, pids_max='512')
    assert node.plan(node_state({'default/web': record}), {'default/web': web}) == [
        ('set_pids', 'default/web', 'pids.max 512, want 1024')]
    assert node.plan(node_state({'default/web': state(web, pids_max='1024')}), {'default/web': web}) == []


def test_a_pod_s_folder_is_root_s_alone_and_new(node, tmp_path):
    """Regression: a container's /tmp is in its pod's folder, and a container
    is root with CHOWN, FSETID and MKNOD: a setuid copy of a shell or a
    device node it left there was reachable by the node's other users. And
    a pod made again (its record unreadable) found the old pod's /tmp, with
    a symlink that pod planted, which podnet then followed."""
    import os
    import stat
    old = tmp_path / 'pods' / 'default_web' / 'c' / 'tmp'
    old.mkdir(parents=True)
    (old / 'attack').symlink_to('/tmp')
    RecordStore(str(tmp_path)).make_folder('default/web')
    RecordStore(str(tmp_path)).make_folder('default/db')
    for name in ('default_web', 'default_db'):
        assert stat.S_IMODE(os.stat(tmp_path / 'pods' / name).st_mode) == 0o700
        assert os.listdir(tmp_path / 'pods' / name) == []


def test_a_pod_folder_no_record_owns_is_swept(node, tmp_path):
    """Regression: a pod's folder outlived it (its removal failed silently),
    and the next pod of that name started with the old /tmp."""
    web = pod('web')
    current = node_state({'default/web': state(web)})
    current.folders = [str(tmp_path / 'pods' / 'default_web'), str(tmp_path / 'pods' / 'default_deep')]
    assert node.plan(current, {'default/web': web}) == [
        ('forget_folder', str(tmp_path / 'pods' / 'default_deep'), 'no pod owns it (its containers wrote there)')]


def test_a_failed_liveness_probe_restarts_the_container_saying_why(node):
    web = pod('web')
    record = state(web, unhealthy={'main': 'container main: liveness probe failed: HTTP status 500'})
    assert node.plan(node_state({'default/web': record}), {'default/web': web}) == [
        ('restart', 'default/web', 'container main: liveness probe failed: HTTP status 500')]


def test_a_failed_liveness_probe_under_restart_policy_never_restarts_nothing(node):
    web = dict(pod('web'), restart_policy='Never')
    record = state(web, unhealthy={'main': 'container main: liveness probe failed: exit code 1'})
    assert node.plan(node_state({'default/web': record}), {'default/web': web}) == []


def test_a_pod_that_is_not_ready_is_left_alone(node):
    web = pod('web')
    record = state(web, unready=['container main: readiness probe failed: exit code 1'])
    assert node.plan(node_state({'default/web': record}), {'default/web': web}) == []


def rollout(owner_of_old='Deployment default/web'):
    old = dict(pod('web-5d8f7c9b4-aaaaa'), owner=owner_of_old)
    new = dict(pod('web-7c5ddbdf54-bbbbb', argv=['/bin/sleep', '60']), owner='Deployment default/web')
    return node_state({'default/web-5d8f7c9b4-aaaaa': state(old, owner=old['owner'])}), {'default/' + new['name']: new}


def test_a_rollout_creates_the_new_pods_before_it_retires_the_old_ones(node):
    current, wanted = rollout()
    assert node.plan(current, wanted) == [
        ('create', 'default/web-7c5ddbdf54-bbbbb', 'new pod'),
        ('retire', 'default/web-5d8f7c9b4-aaaaa', 'replaced by the new pods of Deployment default/web'), GUARD]


def test_the_runtime_retires_after_it_creates():
    from ansible.module_utils.podnet.pods.runtime import PHASES
    verbs = [verb for phase in PHASES for verb in phase]
    assert verbs.index('delete') < verbs.index('create') < verbs.index('retire') < verbs.index('guard')


def test_a_pod_of_another_owner_or_none_is_deleted_first(node):
    for owner in ('Deployment default/other', ''):
        current, wanted = rollout(owner)
        assert node.plan(current, wanted)[0] == ('delete', 'default/web-5d8f7c9b4-aaaaa', 'not wanted on this node')


def test_scaling_down_alone_deletes_at_once(node):
    current, _ = rollout()
    assert node.plan(current, {})[0] == ('delete', 'default/web-5d8f7c9b4-aaaaa', 'not wanted on this node')


def test_a_pod_without_probes_or_stand_in_keeps_the_spec_hash_it_had():
    web = pod('web')
    planned = dict(web, containers=[dict(web['containers'][0], probes={}, stand_in=False)])
    assert spec_hash(planned) == spec_hash(web)
    probed = dict(web, containers=[dict(web['containers'][0], probes={'readiness': {'handler': 'exec'}})])
    assert spec_hash(probed) != spec_hash(web)
