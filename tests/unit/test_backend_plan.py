"""backend.wanted_state() for vxlan and host-gw, the host-gw L2 check, the
vxlan guard table, and plan() between the normalised states, including
switching backends."""
import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils.podnet.core import reconcile
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.node import backend
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import Action

NODE = {'name': 'node1', 'underlay_ip': '10.11.1.11', 'underlay_prefixlen': 24,
        'underlay_ifname': 'eth0', 'underlay_mtu': 1500, 'pod_cidr': '10.42.0.0/24',
        'vtep_mac': '02:00:00:00:00:01'}
NODE2 = {'name': 'node2', 'underlay_ip': '10.11.1.12', 'pod_cidr': '10.42.1.0/24',
         'vtep_mac': '02:00:00:00:00:02'}
NODE3 = {'name': 'node3', 'underlay_ip': '10.11.1.13', 'pod_cidr': '10.42.2.0/24',
         'vtep_mac': '02:00:00:00:00:03'}
PEERS = [NODE2, NODE3]


def steps(actions):
    return [(a.verb, a.target) for a in actions]


def vxlan(peers=PEERS):
    return backend.wanted_state('vxlan', NODE, peers)


def host_gw(peers=PEERS):
    return backend.wanted_state('host-gw', NODE, peers)


def test_vxlan_vtep_is_flannel_like():
    assert vxlan()['vtep'] == {'vni': 1, 'port': 8472, 'local': '10.11.1.11', 'learning': 0,
                               'mac': '02:00:00:00:00:01', 'mtu': 1450,
                               'address': '10.42.0.0/32'}


def test_vxlan_has_fdb_neigh_and_onlink_route_per_peer():
    state = vxlan()
    assert state['fdb'] == {'02:00:00:00:00:02': '10.11.1.12', '02:00:00:00:00:03': '10.11.1.13'}
    assert state['neigh'] == {'10.42.1.0': '02:00:00:00:00:02', '10.42.2.0': '02:00:00:00:00:03'}
    assert state['routes'] == {'10.42.1.0/24': ('10.42.1.0', 'flannel.1', True),
                               '10.42.2.0/24': ('10.42.2.0', 'flannel.1', True)}


def test_host_gw_routes_via_peer_underlay_and_has_no_vtep():
    assert host_gw() == {'vtep': None, 'fdb': {}, 'neigh': {}, 'guard': None,
                         'routes': {'10.42.1.0/24': ('10.11.1.12', 'eth0', False),
                                    '10.42.2.0/24': ('10.11.1.13', 'eth0', False)}}


def test_host_gw_refuses_a_peer_in_another_rack():
    other_rack = dict(NODE3, underlay_ip='10.11.2.13')
    with pytest.raises(SpecError) as info:
        backend.check_host_gw(NODE, [NODE2, other_rack])
    assert 'node3 (10.11.2.13)' in str(info.value)
    assert 'L2 segment' in str(info.value)
    with pytest.raises(SpecError, match='node3'):
        host_gw([NODE2, other_rack])


def test_host_gw_accepts_peers_of_the_same_subnet():
    backend.check_host_gw(NODE, PEERS)


def test_nothing_to_do_when_current_is_wanted():
    assert steps(backend.plan(vxlan(), vxlan())) == []
    assert steps(backend.plan(host_gw(), host_gw())) == []


def test_fresh_node_gets_vtep_first_then_entries():
    actions = steps(backend.plan(backend.NOTHING, vxlan()))
    assert actions[0] == ('create_vtep', 'flannel.1')
    assert sorted(actions[1:]) == sorted(
        [('set_fdb', '02:00:00:00:00:02'), ('set_fdb', '02:00:00:00:00:03'),
         ('set_neigh', '10.42.1.0'), ('set_neigh', '10.42.2.0'),
         ('set_routes', '10.42.1.0/24'), ('set_routes', '10.42.2.0/24'),
         ('set_table', 'inet podnet-vxlan')])


def test_vxlan_to_host_gw_deletes_the_vtep_and_not_what_goes_with_it():
    assert steps(backend.plan(vxlan(), host_gw())) == [
        ('delete_vtep', 'flannel.1'),
        ('set_routes', '10.42.1.0/24'), ('set_routes', '10.42.2.0/24'),
        ('delete_table', 'inet podnet-vxlan')]


def test_host_gw_to_vxlan_creates_the_vtep_and_replaces_the_routes():
    actions = steps(backend.plan(host_gw(), vxlan()))
    assert actions == [
        ('create_vtep', 'flannel.1'),
        ('set_fdb', '02:00:00:00:00:02'), ('set_fdb', '02:00:00:00:00:03'),
        ('set_neigh', '10.42.1.0'), ('set_neigh', '10.42.2.0'),
        ('set_routes', '10.42.1.0/24'), ('set_routes', '10.42.2.0/24'),
        ('set_table', 'inet podnet-vxlan')]


def test_host_gw_route_of_a_peer_gone_with_the_switch_is_deleted():
    actions = steps(backend.plan(host_gw(), vxlan([NODE2])))
    assert ('del_routes', '10.42.2.0/24') in actions
    assert ('set_routes', '10.42.1.0/24') in actions


def test_a_changed_vtep_is_recreated_with_all_its_entries():
    current = vxlan()
    current['vtep'] = dict(current['vtep'], mtu=1400)
    actions = steps(backend.plan(current, vxlan()))
    assert actions[:2] == [('delete_vtep', 'flannel.1'), ('create_vtep', 'flannel.1')]
    assert len(actions) == 2 + 6
    assert not any(verb.startswith('del_') for verb, _ in actions)


def test_a_removed_peer_deletes_its_entries_only():
    assert steps(backend.plan(vxlan(), vxlan([NODE2]))) == [
        ('del_fdb', '02:00:00:00:00:03'), ('del_neigh', '10.42.2.0'),
        ('del_routes', '10.42.2.0/24'), ('set_table', 'inet podnet-vxlan')]


def test_a_removed_host_gw_peer_deletes_its_route_only():
    assert steps(backend.plan(host_gw(), host_gw([NODE3]))) == [('del_routes', '10.42.1.0/24')]


def test_a_moved_peer_resets_its_fdb_entry():
    moved = dict(NODE3, underlay_ip='10.11.1.99')
    assert steps(backend.plan(vxlan(), vxlan([NODE2, moved]))) == [
        ('set_fdb', '02:00:00:00:00:03'), ('set_table', 'inet podnet-vxlan')]


def test_an_added_peer_sets_its_entries_only():
    assert steps(backend.plan(vxlan([NODE2]), vxlan())) == [
        ('set_fdb', '02:00:00:00:00:03'), ('set_neigh', '10.42.2.0'),
        ('set_routes', '10.42.2.0/24'), ('set_table', 'inet podnet-vxlan')]


def test_every_action_says_why():
    assert backend.plan(host_gw([NODE3]), host_gw([NODE2])) == [
        Action('del_routes', '10.42.2.0/24', 'no node has it: via 10.11.1.13 dev eth0'),
        Action('set_routes', '10.42.1.0/24', 'missing, want via 10.11.1.12 dev eth0')]
    moved = dict(NODE3, underlay_ip='10.11.1.99')
    assert backend.plan(vxlan(), vxlan([NODE2, moved])) == [
        Action('set_fdb', '02:00:00:00:00:03', 'dst 10.11.1.13, want dst 10.11.1.99'),
        Action('set_table', 'inet podnet-vxlan', 'rules differ from the wanted ones')]
    current = dict(vxlan(), vtep=dict(vxlan()['vtep'], mtu=1400))
    assert backend.plan(current, vxlan())[0] == Action('delete_vtep', 'flannel.1',
                                                       'mtu 1400, want 1450')


def test_the_diff_shows_entries_as_ip_and_bridge_print_them():
    shown = reconcile.render(backend.show(vxlan()))
    assert "10.42.1.0/24: via 10.42.1.0 dev flannel.1 onlink" in shown
    assert '02:00:00:00:00:02: dst 10.11.1.12' in shown
    assert '10.42.1.0: lladdr 02:00:00:00:00:02' in shown


# -- the vxlan guard: VXLAN only from the peers' VTEPs, never from a pod --------
def test_the_vxlan_port_answers_only_peers_over_the_underlay():
    """Regression (issue 21): a pod's plain UDP datagram to a node's port
    8472 was decapsulated, its inner packet delivered with any source, past
    the source guard, isolation and NetworkPolicy."""
    assert nft.describe(*vxlan()['guard']) == {
        'forward': ['type filter hook forward priority -10; policy accept',
                    'iifname "cni0" udp dport 8472 ip daddr != 10.42.0.0-10.42.2.255 drop',
                    'iifname "veth*" udp dport 8472 ip daddr != 10.42.0.0-10.42.2.255 drop'],
        'input': ['type filter hook input priority -10; policy accept',
                  'udp dport 8472 iifname != "eth0" drop',
                  'udp dport 8472 ip saddr != { 10.11.1.12, 10.11.1.13 } drop']}


def test_a_node_without_peers_answers_no_vxlan():
    assert nft.describe(*vxlan([])['guard'])['input'][1:] == ['udp dport 8472 drop']


def test_a_missing_or_changed_guard_is_restored_and_host_gw_has_none():
    assert steps(backend.plan(dict(vxlan(), guard=None), vxlan())) == [('set_table', 'inet podnet-vxlan')]
    loose = dict(vxlan(), guard=(vxlan()['guard'][0], vxlan()['guard'][1][:1]))
    assert backend.plan(loose, vxlan()) == [Action('set_table', 'inet podnet-vxlan', '1 rules, want 4')]
    assert steps(backend.plan(dict(host_gw(), guard=vxlan()['guard']), host_gw())) == [
        ('delete_table', 'inet podnet-vxlan')]
    assert steps(backend.plan(vxlan(), backend.NOTHING))[-1] == ('delete_table', 'inet podnet-vxlan')


def test_the_diff_shows_the_guard_as_nft_lists_it():
    shown = backend.show(vxlan())
    assert 'udp dport 8472 ip saddr != { 10.11.1.12, 10.11.1.13 } drop' in shown['guard']['input']
    assert backend.show(host_gw())['guard'] is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('nft'),
                    reason='loading nft tables into a namespace needs root, unshare and nft')
@pytest.mark.parametrize('peers', [PEERS, [NODE2], []], ids=['two peers', 'one peer', 'no peer'])
def test_the_guard_reads_back_unchanged(peers):
    chains, rules = vxlan(peers)['guard']
    family, table = backend.GUARD.split()
    listing = subprocess.run(
        ['unshare', '--net', 'sh', '-c', 'nft -j -f - && nft -j list table %s %s' % (family, table)],
        input=json.dumps(nft.table_commands(family, table, chains, rules)),
        capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    current = nft.read_table(lambda argv, data=None: (0, listing.stdout, ''), family, table)
    assert backend.plan(dict(vxlan(peers), guard=current), vxlan(peers)) == []


# -- foreign tables that would drop the traffic between nodes are named ------------
def evil_table(family, hook, expr, dev=None):
    chain = {'family': family, 'table': 'evil', 'name': hook, 'type': 'filter', 'hook': hook, 'prio': -10,
             'policy': 'accept'}
    if dev:
        chain['dev'] = dev
    return {'nftables': [{'table': {'family': family, 'name': 'evil'}}, {'chain': chain},
                         {'rule': {'family': family, 'table': 'evil', 'chain': hook, 'expr': expr}}]}


def foreign_drops(backend_name, table):
    from ansible.module_utils.podnet.kernel import nfteval
    return nfteval.drops(table, backend._peer_flows(backend_name, NODE, PEERS))


def test_an_input_drop_of_vxlan_from_the_peers_is_named():
    """Regression (issue 21): a foreign inet input drop of UDP 8472 cut the
    node off from its peers and no run said so."""
    table = evil_table('inet', 'input', [nft.match('udp', 'dport', '==', 8472), nft.DROP])
    assert foreign_drops('vxlan', table) == [
        'VXLAN from node2 (10.11.1.12): dropped by inet evil chain input rule 0: udp dport 8472 drop',
        'VXLAN from node3 (10.11.1.13): dropped by inet evil chain input rule 0: udp dport 8472 drop']
    only_node3 = evil_table('netdev', 'ingress', [nft.match('ip', 'saddr', '==', '10.11.1.13'), nft.DROP],
                            dev=NODE['underlay_ifname'])
    assert foreign_drops('vxlan', only_node3) == [
        'VXLAN from node3 (10.11.1.13): dropped by netdev evil chain ingress rule 0: ip saddr 10.11.1.13 drop']
    assert foreign_drops('vxlan', evil_table('inet', 'output', [nft.match('udp', 'dport', '==', 8472), nft.DROP])) \
        == ['VXLAN to node2 (10.11.1.12): dropped by inet evil chain output rule 0: udp dport 8472 drop',
            'VXLAN to node3 (10.11.1.13): dropped by inet evil chain output rule 0: udp dport 8472 drop']


def test_host_gw_pod_traffic_over_the_underlay_is_judged_and_not_vxlan():
    table = evil_table('inet', 'forward', [nft.meta_match('oifname', '==', NODE['underlay_ifname']), nft.DROP])
    assert foreign_drops('host-gw', table) == [
        'pod 10.42.0.2 to pod 10.42.1.2 on node2: dropped by inet evil chain forward rule 0: oifname "eth0" drop',
        'pod 10.42.0.2 to pod 10.42.2.2 on node3: dropped by inet evil chain forward rule 0: oifname "eth0" drop']
    assert foreign_drops('vxlan', table) == []
