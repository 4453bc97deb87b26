"""nftables through `nft -j` with a fake runner, the masquerade ruleset,
and tables described in nft's own syntax for diffs."""
import json

import pytest
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.node import network
from ansible.module_utils.podnet.node.network import nat_ruleset
from ansible.module_utils.podnet.core.reconcile import Action

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
    current = nft.current_table(run, *network.NAT)
    assert not nft.needs_update(current, chains, rules)


def test_read_table_gives_chains_and_rules_without_handles():
    run = FakeRun(out=listing('ip', 't', CHAINS, RULES))
    assert nft.read_table(run, 'ip', 't') == (CHAINS, RULES)


# -- tables as people read them ---------------------------------------------
def test_describe_prints_the_masquerade_table_as_nft_lists_it():
    assert nft.describe(*nat_ruleset(POD_CIDR, CLUSTER_CIDR)) == {'postrouting': [
        'type nat hook postrouting priority 100; policy accept',
        'ip saddr 10.42.1.0/24 ip daddr != 10.42.0.0/16 masquerade']}


def test_describe_prints_sets_vmaps_interfaces_and_jumps():
    chains = [{'name': 'forward', 'type': 'filter', 'hook': 'forward', 'prio': 0,
               'policy': 'accept'}, {'name': 'ingress-1'}]
    vmap = {'vmap': {'key': {'payload': {'protocol': 'ip', 'field': 'daddr'}},
                     'data': {'set': [['10.42.1.2', {'jump': {'target': 'ingress-1'}}],
                                      ['10.42.1.3', {'drop': None}]]}}}
    state = {'match': {'op': 'in', 'left': {'ct': {'key': 'state'}},
                       'right': ['established', 'related']}}
    ports = nft.match('tcp', 'dport', '==', {'set': [80, {'range': [8000, 8080]}]})
    oif = {'match': {'op': '==', 'left': {'meta': {'key': 'oifname'}}, 'right': 'mgmt0'}}
    rules = [('forward', [state, {'accept': None}]), ('forward', [vmap]),
             ('ingress-1', [ports, oif, {'accept': None}])]
    assert nft.describe(chains, rules) == {
        'forward': ['type filter hook forward priority 0; policy accept',
                    'ct state established,related accept',
                    'ip daddr vmap { 10.42.1.2 : jump ingress-1, 10.42.1.3 : drop }'],
        'ingress-1': ['regular chain', 'tcp dport { 80, 8000-8080 } oifname "mgmt0" accept']}


def test_describe_falls_back_to_json_for_unknown_statements():
    [line] = nft.describe([{'name': 'c'}], [('c', [{'counter': {'packets': 0}}])])['c'][1:]
    assert line == '{"counter": {"packets": 0}}'


# -- planning a whole table -------------------------------------------------
def test_plan_table_says_missing_changed_count_or_nothing():
    assert nft.plan_table('ip t', None, CHAINS, RULES) == [Action('set_table', 'ip t', 'missing')]
    assert nft.plan_table('ip t', (CHAINS, RULES[:1]), CHAINS, RULES) == [
        Action('set_table', 'ip t', '1 rules, want 2')]
    assert nft.plan_table('ip t', (CHAINS, RULES[::-1]), CHAINS, RULES) == [
        Action('set_table', 'ip t', 'rules differ from the wanted ones')]
    assert nft.plan_table('ip t', (CHAINS[::-1], RULES), CHAINS, RULES) == []


def test_the_devices_of_an_ingress_chain_are_read_where_nft_json_leaves_them_out():
    """nft 1.0.6 (Debian 12) prints no `dev` in the JSON of an ingress chain:
    without it no netdev ingress drop of a foreign table could be judged."""
    listed = {('tables',): [{'table': {'family': 'netdev', 'name': 'evil'}}],
              ('table', 'netdev', 'evil'): [
                  {'chain': {'family': 'netdev', 'table': 'evil', 'name': n, 'hook': 'ingress'}} for n in 'ab']}
    texts = {'a': 'table netdev evil {\n\tchain a {\n\t\ttype filter hook ingress device "eth0" priority filter;'
                  ' policy accept;\n\t}\n}\n',
             'b': '\t\ttype filter hook ingress devices = { flannel.1, eth0 } priority filter; policy accept;\n'}

    def run(argv):
        if argv[:2] == ['nft', '-j']:
            return 0, json.dumps({'nftables': listed[tuple(argv[3:])]}), ''
        return 0, texts[argv[-1]], ''
    chains = [i['chain'] for i in nft.foreign_ruleset(run)['nftables'] if 'chain' in i]
    assert [c['dev'] for c in chains] == [['eth0'], ['flannel.1', 'eth0']]
