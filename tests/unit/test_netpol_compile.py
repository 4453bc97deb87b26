"""NetworkPolicy semantics and their compilation to nftables.

The model is the upstream netpol e2e one: namespaces x, y, z labelled ns=<name>,
pods a, b, c labelled pod=<name>, each serving 80 and 81 over TCP, UDP and
SCTP under the names serve-<port>-<protocol>. Pods alternate between two
nodes, so pairs are both bridged on one node and routed between nodes.

Three layers: selects(); allowed() against matrices derived by hand from the
Kubernetes documentation and the e2e cases; compile_node() run through a
small nft interpreter and held against allowed() for every pair, port and
protocol. Structural checks follow.
"""
import ipaddress
import json
import random

import pytest
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.policy import netpol_nft
from ansible.module_utils.podnet.policy.netpol import (
    Cluster,
    Requirement,
    Selector,
    allowed,
    selects,
)
from ansible.module_utils.podnet.policy.netpol_nft import BASE_CHAIN, FAMILY, TABLE
from netpol_cases import (
    ALL,
    CASES,
    CLUSTER,
    DENY_ALL_X,
    DENY_INGRESS_X,
    EXTERNAL,
    NODE_IPS,
    PODS,
    PROBES,
    all_rules,
    big_cluster,
    compile_all,
    delivered,
    endpoints,
    from_a,
    labels,
    mismatches,
    policy,
    to_a,
)


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_allowed_matches_the_hand_derived_matrix(name, policies, probe, expected):
    port, protocol = probe
    assert mismatches(expected.table, lambda s, d: allowed(
        PODS[s], PODS[d], port, protocol, CLUSTER, policies)) == []


def test_allowed_takes_ips_for_pods_nodes_and_the_outside():
    policies = [DENY_ALL_X]
    x_a = PODS['x/a']
    assert allowed(x_a['ip'], PODS['y/a']['ip'], 80, 'TCP', CLUSTER, policies) is False
    assert allowed(NODE_IPS[x_a['node']][1], x_a, 80, 'TCP', CLUSTER, policies) is True
    assert allowed(x_a, NODE_IPS[x_a['node']][0], 22, 'TCP', CLUSTER, policies) is True
    assert allowed(NODE_IPS['node2'][1], x_a, 80, 'TCP', CLUSTER, policies) is False
    assert allowed(EXTERNAL, PODS['y/a'], 80, 'TCP', CLUSTER, policies) is True
    assert allowed(x_a, EXTERNAL, 443, 'TCP', CLUSTER, policies) is False


def test_egress_named_port_to_the_outside_matches_nothing():
    policies = [from_a({'ports': [{'port': 'serve-80-tcp'}, {'port': 443}]})]
    assert allowed(PODS['x/a'], EXTERNAL, 80, 'TCP', CLUSTER, policies) is False
    assert allowed(PODS['x/a'], EXTERNAL, 443, 'TCP', CLUSTER, policies) is True


def test_selects():
    labelled = {'pod': 'a', 'tier': 'web'}
    assert selects(Selector(), {}) and selects(Selector(), labelled)
    assert selects(Selector((('pod', 'a'),)), labelled)
    assert not selects(Selector((('pod', 'a'), ('tier', 'db'))), labelled)

    def requirement(op, *values):
        return Selector(match_expressions=(Requirement('tier', op, values),))
    assert selects(requirement('In', 'web', 'db'), labelled)
    assert not selects(requirement('In', 'db'), labelled)
    assert not selects(requirement('In', 'web'), {'pod': 'a'})
    assert selects(requirement('NotIn', 'db'), labelled)
    assert selects(requirement('NotIn', 'db'), {'pod': 'a'})  # absent key: NotIn matches
    assert not selects(requirement('NotIn', 'web'), labelled)
    assert selects(requirement('Exists'), labelled) and not selects(requirement('Exists'), {})
    assert selects(requirement('DoesNotExist'), {}) and not selects(
        requirement('DoesNotExist'), labelled)


def test_namespaces_match_on_their_name_label_even_when_the_caller_omits_it():
    peer_policy = to_a({'from': [{'namespaceSelector': labels(
        **{'kubernetes.io/metadata.name': 'y'})}]})
    bare = Cluster(CLUSTER.pods, {n: {} for n in 'xyz'})
    assert allowed(PODS['y/b'], PODS['x/a'], 80, 'TCP', bare, [peer_policy])
    assert not allowed(PODS['z/b'], PODS['x/a'], 80, 'TCP', bare, [peer_policy])


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_compiled_tables_agree_with_allowed_everywhere(name, policies, probe, expected):
    tables = compile_all(policies)
    wrong = ['%s -> %s %s/%s: compiled %s' % (s if isinstance(s, str) else s['name'], d
                                                  if isinstance(d, str) else d['name'],
                                                  port, protocol, got)
             for s, d in endpoints() for port, protocol in PROBES
             for got in [delivered(tables, s, d, (port, protocol))]
             if got != allowed(s, d, port, protocol, CLUSTER, policies)]
    assert wrong == []


def test_table_is_ip_podnet_policy_hooked_on_forward_only():
    # An ip table never sees ARP or IPv6, so neither can be dropped; node
    # traffic crosses input/output, which are not hooked.
    assert (FAMILY, TABLE) == ('ip', 'podnet-policy')
    for chains, _ in compile_all([DENY_ALL_X]).values():
        assert [c for c in chains if 'hook' in c] == [BASE_CHAIN]
        assert BASE_CHAIN == {'name': 'forward', 'type': 'filter', 'hook': 'forward',
                              'prio': 0, 'policy': 'accept'}


def test_no_policy_no_rules():
    assert compile_all([]) == {n: ([BASE_CHAIN], []) for n in NODE_IPS}


def test_a_node_whose_pods_are_not_selected_gets_no_rules():
    only_node2 = policy('x/b-only', {'podSelector': labels(pod='b')})  # x/b is on node2
    tables = compile_all([only_node2])
    assert tables['node1'] == ([BASE_CHAIN], [])
    assert tables['node2'][1]


def test_pods_allowing_everything_get_no_rules():
    tables = compile_all([DENY_INGRESS_X, policy('x/all', {'podSelector': ALL, 'ingress': [{}]})])
    assert all_rules(tables) == []


def test_established_first_drop_never_reject():
    tables = compile_all([DENY_ALL_X, to_a({'from': [{'podSelector': labels(pod='b')}]})])
    for chains, rules in tables.values():
        assert rules[0] == ('forward', netpol_nft.ESTABLISHED)
        assert 'reject' not in json.dumps(rules)
        for chain in chains[1:]:
            assert [expr for name, expr in rules if name == chain['name']][-1] == [{'drop': None}]


def test_replies_pass_even_when_everything_is_denied():
    tables = compile_all([DENY_ALL_X])
    for s, d in endpoints():
        assert delivered(tables, s, d, (80, 'TCP'), ct='established')


def test_deny_all_maps_straight_to_drop_without_chains():
    chains, rules = compile_all([DENY_ALL_X])['node1']
    assert chains == [BASE_CHAIN]
    x_pods = sorted((p for p in PODS.values() if p['namespace'] == 'x' and p['node'] == 'node1'),
                    key=lambda p: ipaddress.ip_address(p['ip']))
    entries = [[p['ip'], {'drop': None}] for p in x_pods]
    assert [expr[0]['vmap']['data']['set'] for _, expr in rules[2:]] == [entries, entries]  # after established, hairpin


def test_ingress_chain_accepts_egress_chain_returns():
    tables = compile_all([to_a({'from': [{'podSelector': labels(pod='b')}]}),
                          from_a({'to': [{'podSelector': labels(pod='b')}]})])
    chains, rules = tables['node1']  # x/a is on node1
    names = [c['name'] for c in chains[1:]]
    assert [n.split('-')[0] for n in names] == ['egress', 'ingress']
    assert all(len(n.split('-')[1]) == 12 for n in names)
    body = {name: [expr[-1] for n, expr in rules if n == name] for name in names}
    assert list(body.values()) == [[{'return': None}, {'drop': None}],
                                   [{'accept': None}, {'drop': None}]]
    maps = [expr[0]['vmap']['data']['set'] for _, expr in rules[2:4]]  # after established, hairpin
    assert maps == [[[PODS['x/a']['ip'], {'jump': {'target': name}}]] for name in names]


def test_pods_with_the_same_rules_share_one_chain_so_rule_count_stays_flat():
    policies = [policy('x/servers', {
        'podSelector': labels(role='server'),
        'ingress': [{'from': [{'namespaceSelector': labels(ns='y')},
                              {'podSelector': labels(role='client')}],
                     'ports': [{'port': 80}, {'port': 81, 'endPort': 90},
                               {'protocol': 'UDP', 'port': 53}]}]})]
    for per_namespace in (6, 60):
        pods = big_cluster(per_namespace)
        chains, rules = compile_all(policies, pods)['node1']
        servers = sorted(ipaddress.ip_address(p['ip']) for p in pods.values()
                         if p['node'] == 'node1' and p['namespace'] == 'x'
                         and p['labels']['role'] == 'server')
        assert len(chains) == 2
        assert len(rules) == 6  # ct, hairpin, vmap; the shared chain: tcp, udp, drop
        vmap = rules[2][1][0]['vmap']['data']['set']  # after established, hairpin
        assert [ipaddress.ip_address(ip) for ip, _ in vmap] == servers


def test_named_ports_resolving_differently_give_different_chains():
    pods = {k: dict(p) for k, p in PODS.items()}
    pods['x/c'] = dict(pods['x/c'], ports=[{'name': 'serve-80-tcp', 'containerPort': 8080,
                                            'protocol': 'TCP'}])
    tables = compile_all([policy('x/web', {'podSelector': ALL,
                                           'ingress': [{'ports': [{'port': 'serve-80-tcp'}]}]})],
                         pods)
    chains, rules = tables['node1']  # x/a and x/c
    ports = sorted(expr[0]['match']['right'] for name, expr in rules
                   if name != 'forward' and 'match' in expr[0])
    assert (len(chains), ports) == (3, [80, 8080])


def test_same_input_in_any_order_gives_the_same_table():
    policies = [DENY_INGRESS_X, to_a({'from': [{'namespaceSelector': labels(ns='y')}],
                                      'ports': [{'port': 'serve-80-tcp'}, {'port': 81}]}),
                from_a({'to': [{'podSelector': labels(pod='b')}],
                        'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})]
    first = compile_all(policies)
    shuffled = dict(random.Random(7).sample(sorted(PODS.items()), len(PODS)))
    assert compile_all(list(reversed(policies)), shuffled) == first


def test_egress_named_port_becomes_per_pod_address_and_port():
    tables = compile_all([from_a({'to': [{'podSelector': labels(pod='b')},
                                         {'ipBlock': {'cidr': '192.0.2.0/24'}}],
                                  'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})])
    chains, rules = tables['node1']
    body = [expr for name, expr in rules if name.startswith('egress-')]
    assert body == [
        [{'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'daddr'}},
                    'right': PODS['x/b']['ip']}},
         {'match': {'op': '==', 'left': {'payload': {'protocol': 'udp', 'field': 'dport'}},
                    'right': 81}}, {'return': None}],
        [{'drop': None}]]


@pytest.mark.parametrize('intervals, address, printed', [
    ([(5, 5)], False, 5),
    ([(81, 81), (80, 80), (80, 80)], False, {'set': [80, 81]}),
    ([(80, 80), (81, 81), (8000, 8080)], False, {'set': [{'range': [80, 81]},
                                                         {'range': [8000, 8080]}]}),
    ([(80, 90), (85, 85), (100, 100)], False, {'set': [{'range': [80, 90]}, 100]}),
    ([(1, 65535)], False, {'range': [1, 65535]}),
    ([(0x0A000000, 0x0A0000FF), (0x0A000100, 0x0A0001FF)], True,
     {'prefix': {'addr': '10.0.0.0', 'len': 23}}),
    ([(0x0A000000, 0x0A0002FF)], True, {'range': ['10.0.0.0', '10.0.2.255']}),
    ([(0x0A000001, 0x0A000001), (0x0A000002, 0x0A000002)], True,
     {'set': ['10.0.0.1', '10.0.0.2']}),
    ([(0x0A000001, 0x0A000001), (0x0A000002, 0x0A000002), (0x0A090000, 0x0A09FFFF)], True,
     {'set': [{'range': ['10.0.0.1', '10.0.0.2']}, {'prefix': {'addr': '10.9.0.0', 'len': 16}}]}),
])
def test_canonical_sets_are_printed_as_nft_prints_them(intervals, address, printed):
    assert nft.canonical(intervals, address) == printed


def test_ip_block_except_boundaries_outside_the_cluster():
    policies = [from_a({'to': [{'ipBlock': {'cidr': '192.0.2.0/24',
                                            'except': ['192.0.2.4/30', '192.0.2.128/25']}}]})]
    tables = compile_all(policies)
    expected = {'192.0.2.0': True, '192.0.2.3': True, '192.0.2.4': False, '192.0.2.7': False,
                '192.0.2.8': True, '192.0.2.127': True, '192.0.2.128': False,
                '192.0.2.255': False, '192.0.3.0': False, '192.0.1.255': False}
    for ip, verdict in expected.items():
        assert allowed(PODS['x/a'], ip, 80, 'TCP', CLUSTER, policies) is verdict, ip
        assert delivered(tables, PODS['x/a'], ip, (80, 'TCP')) is verdict, ip
