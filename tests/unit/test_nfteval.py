"""The filter chains a forwarded packet meets, judged from `nft -j list
ruleset`: the first drop or reject is named by table, chain and rule; an
accept ends a chain; jumps are followed; a drop policy counts; what the
reader cannot judge is listed, never guessed; podnet's policy and nat
tables are left to their own judges."""
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.node.network import Mgmt, isolation_ruleset
from ansible.module_utils.podnet.explain.nfteval import judge

PACKET = {'src': '10.42.0.2', 'dst': '10.42.1.3', 'protocol': 'tcp', 'dport': 80,
          'iif': 'veth00000002', 'oif': 'flannel.1'}


def ruleset(family, table, chains, rules):
    items = [{'table': {'family': family, 'name': table}}]
    items += [{'chain': dict(c, family=family, table=table)} for c in chains]
    items += [{'rule': {'family': family, 'table': table, 'chain': chain, 'expr': expr}}
              for chain, expr in rules]
    return items


def judged(*tables, packet=PACKET):
    return judge({'nftables': [item for t in tables for item in t]}, packet)


FORWARD = {'name': 'fwd', 'type': 'filter', 'hook': 'forward', 'prio': 0, 'policy': 'accept'}
TO_B_80 = [nft.match('ip', 'daddr', '==', '10.42.1.3'), nft.match('tcp', 'dport', '==', 80)]


def test_a_matching_drop_is_named_and_a_miss_is_not():
    evil = ruleset('ip', 'evil', [FORWARD], [('fwd', TO_B_80 + [{'counter': None}, {'drop': None}])])
    assert judged(evil) == ('ip evil chain fwd rule 0', [])
    assert judged(evil, packet=dict(PACKET, dport=81)) == (None, [])
    assert judged(evil, packet=dict(PACKET, protocol='udp')) == (None, [])


def test_accept_ends_the_chain_jumps_are_followed_and_policy_drop_counts():
    chains = [dict(FORWARD, policy='drop'), {'name': 'check'}]
    rules = [('fwd', [{'jump': {'target': 'check'}}]),
             ('check', [nft.match('ip', 'saddr', '==', nft.prefix('10.42.0.0/24')), {'accept': None}])]
    assert judged(ruleset('inet', 'fw', chains, rules)) == (None, [])
    assert judged(ruleset('inet', 'fw', chains, rules), packet=dict(PACKET, src='10.42.9.9')) == \
        ('inet fw chain fwd policy drop', [])


def test_what_cannot_be_judged_is_listed():
    odd = ruleset('ip', 'odd', [FORWARD], [('fwd', [{'match': {'op': '==', 'left': {'meta': {'key': 'mark'}},
                                                                'right': 1}}, {'drop': None}])])
    dropped_by, not_judged = judged(odd)
    assert dropped_by is None and not_judged == ["ip odd chain fwd rule 0 (match on {'meta': {'key': 'mark'}})"]


def test_the_isolation_table_drops_pods_to_the_controller_only():
    chains, rules = isolation_ruleset('10.42.0.0/16', Mgmt('mgmt0', ['172.30.0.11/24']), ['172.30.0.1'])
    table = ruleset('inet', 'podnet-isolation', chains, rules)
    assert judged(table) == (None, [])
    dropped_by, _ = judged(table, packet=dict(PACKET, dst='172.30.0.1', oif='mgmt0'))
    assert dropped_by.startswith('inet podnet-isolation chain forward rule ')


def test_podnet_policy_and_nat_are_left_to_their_judges():
    policy = ruleset('ip', 'podnet-policy', [FORWARD], [('fwd', [{'drop': None}])])
    assert judged(policy) == (None, [])
