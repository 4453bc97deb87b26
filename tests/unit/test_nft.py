"""nftables through `nft -j` with a fake runner, the masquerade ruleset,
and NodeNetwork.plan() over crafted current state."""
import json

import pytest
from ansible.module_utils.podnet import network, nft
from ansible.module_utils.podnet.network import NodeNetwork, nat_ruleset

POD_CIDR, CLUSTER_CIDR = '10.42.1.0/24', '10.42.0.0/16'
CHAINS = [{'name': 'input', 'type': 'filter', 'hook': 'input', 'prio': 0, 'policy': 'accept'},
          {'name': 'output', 'type': 'filter', 'hook': 'output', 'prio': 0, 'policy': 'accept'}]
RULES = [('input', [{'accept': None}]), ('output', [{'drop': None}])]


class FakeRun:
    """Stands in for module.run_command: records calls, returns one answer."""

    def __init__(self, rc=0, out='', err=''):
        self.answer, self.calls = (rc, out, err), []

    def __call__(self, argv, data=None):
        self.calls.append((argv, data))
        return self.answer


def listing(family, table, chains, rules):
    """`nft -j list table` output: metainfo, table, chains and rules with handles."""
    items = [{'metainfo': {'version': '1.0.6', 'json_schema_version': 1}},
             {'table': {'family': family, 'name': table, 'handle': 7}}]
    items += [{'chain': dict(c, family=family, table=table, handle=i)}
              for i, c in enumerate(chains, start=1)]
    items += [{'rule': {'family': family, 'table': table, 'chain': chain, 'handle': 20 + i,
                        'expr': expr}} for i, (chain, expr) in enumerate(rules)]
    return json.dumps({'nftables': items})


# -- nft ----------------------------------------------------------------------
def test_table_commands_is_one_transaction_ensure_delete_recreate_then_fill():
    cmds = nft.table_commands('ip', 't', CHAINS, RULES)['nftables']
    table = {'family': 'ip', 'name': 't'}
    assert cmds[:3] == [{'add': {'table': table}}, {'delete': {'table': table}},
                        {'add': {'table': table}}]
    assert [c['add']['chain']['name'] for c in cmds[3:5]] == ['input', 'output']
    assert cmds[3]['add']['chain'] == dict(CHAINS[0], family='ip', table='t')
    assert cmds[5:] == [{'add': {'rule': {'family': 'ip', 'table': 't', 'chain': chain,
                                          'expr': expr}}} for chain, expr in RULES]


def test_wanted_table_ignores_chain_order():
    assert nft.wanted_table(CHAINS, RULES) == nft.wanted_table(CHAINS[::-1], RULES)


def test_wanted_table_keeps_rule_order():
    assert nft.wanted_table(CHAINS, RULES) != nft.wanted_table(CHAINS, RULES[::-1])


def test_needs_update_only_when_current_differs():
    assert not nft.needs_update(nft.wanted_table(CHAINS, RULES), CHAINS, RULES)
    assert nft.needs_update(nft.wanted_table(CHAINS, RULES[:1]), CHAINS, RULES)
    assert nft.needs_update(None, CHAINS, RULES)


def test_current_table_drops_handles_family_and_table():
    run = FakeRun(out=listing('ip', 't', CHAINS, RULES))
    assert nft.current_table(run, 'ip', 't') == nft.wanted_table(CHAINS, RULES)
    assert run.calls == [(['nft', '-j', 'list', 'table', 'ip', 't'], None)]


def test_current_table_is_none_when_the_table_does_not_exist():
    run = FakeRun(rc=1, err='Error: No such file or directory\nlist table ip t\n')
    assert nft.current_table(run, 'ip', 't') is None


def test_current_table_raises_on_other_nft_errors():
    run = FakeRun(rc=1, err='Error: Operation not permitted\n')
    with pytest.raises(nft.NftError, match='Operation not permitted'):
        nft.current_table(run, 'ip', 't')


def test_apply_feeds_the_commands_as_json_on_stdin():
    run = FakeRun()
    commands = nft.table_commands('ip', 't', CHAINS, RULES)
    nft.apply(run, commands, 't')
    assert run.calls == [(['nft', '-j', '-f', '-'], json.dumps(commands))]


def test_apply_raises_with_nfts_stderr():
    run = FakeRun(rc=1, err='Error: Could not process rule: No such file or directory\n')
    with pytest.raises(nft.NftError) as info:
        nft.apply(run, nft.delete_commands('ip', 't'), 't')
    assert info.value.subject == 't'
    assert 'Could not process rule: No such file or directory' in str(info.value)


# -- masquerade ruleset -----------------------------------------------------
def test_masquerade_matches_pod_source_and_not_cluster_destination():
    chains, rules = nat_ruleset(POD_CIDR, CLUSTER_CIDR)
    assert [(c['name'], c['type'], c['hook']) for c in chains] == [
        ('postrouting', 'nat', 'postrouting')]
    [(chain, expr)] = rules
    assert chain == 'postrouting'
    source, destination, verdict = expr
    assert source['match']['op'] == '=='
    assert source['match']['left'] == {'payload': {'protocol': 'ip', 'field': 'saddr'}}
    assert source['match']['right'] == {'prefix': {'addr': '10.42.1.0', 'len': 24}}
    assert destination['match']['op'] == '!='
    assert destination['match']['left'] == {'payload': {'protocol': 'ip', 'field': 'daddr'}}
    assert destination['match']['right'] == {'prefix': {'addr': '10.42.0.0', 'len': 16}}
    assert verdict == {'masquerade': None}


def test_masquerade_table_read_back_from_nft_needs_no_update():
    chains, rules = nat_ruleset(POD_CIDR, CLUSTER_CIDR)
    run = FakeRun(out=listing('ip', 'podnet-nat', chains, rules))
    current = nft.current_table(run, network.NAT_FAMILY, network.NAT_TABLE)
    assert not nft.needs_update(current, chains, rules)


# -- NodeNetwork.plan ---------------------------------------------------------
def node_network(tmp_path, mtu=1450):
    return NodeNetwork(FakeRun(rc=99, err='plan must not run nft'), str(tmp_path),
                       POD_CIDR, CLUSTER_CIDR, mtu)


def converged(**changes):
    current = {'bridge': {'mtu': 1450, 'addresses': ['10.42.1.1/24'], 'up': True},
               'nat': nft.wanted_table(*nat_ruleset(POD_CIDR, CLUSTER_CIDR)),
               'pod_cidr': POD_CIDR}
    current.update(changes)
    return current


def test_converged_network_needs_nothing(tmp_path):
    net = node_network(tmp_path)
    assert net.plan(converged(), 'present') == []
    assert net.run.calls == []


def test_bridge_mtu_change_reconfigures_the_bridge(tmp_path):
    assert node_network(tmp_path, mtu=1500).plan(converged(), 'present') == ['bridge']


def test_stale_bridge_address_reconfigures_the_bridge(tmp_path):
    bridge = {'mtu': 1450, 'addresses': ['10.42.1.1/24', '10.42.9.1/24'], 'up': True}
    assert node_network(tmp_path).plan(converged(bridge=bridge), 'present') == ['bridge']


def test_bridge_down_is_reconfigured(tmp_path):
    bridge = {'mtu': 1450, 'addresses': ['10.42.1.1/24'], 'up': False}
    assert node_network(tmp_path).plan(converged(bridge=bridge), 'present') == ['bridge']


def test_missing_nat_table_is_created(tmp_path):
    assert node_network(tmp_path).plan(converged(nat=None), 'present') == ['nat']


def test_a_different_recorded_cidr_is_saved(tmp_path):
    assert node_network(tmp_path).plan(converged(pod_cidr='10.42.7.0/24'), 'present') == [
        'save_pod_cidr']


def test_fresh_node_gets_bridge_nat_and_cidr_in_that_order(tmp_path):
    fresh = {'bridge': None, 'nat': None, 'pod_cidr': None}
    assert node_network(tmp_path).plan(fresh, 'present') == ['bridge', 'nat', 'save_pod_cidr']


def test_absent_removes_everything_that_exists(tmp_path):
    assert node_network(tmp_path).plan(converged(), 'absent') == [
        'delete_bridge', 'delete_nat', 'forget_pod_cidr']


def test_absent_removes_only_what_exists(tmp_path):
    net = node_network(tmp_path)
    assert net.plan(converged(bridge=None, pod_cidr=None), 'absent') == ['delete_nat']
    assert net.plan({'bridge': None, 'nat': None, 'pod_cidr': None}, 'absent') == []
