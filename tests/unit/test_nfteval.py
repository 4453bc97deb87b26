"""The filter chains a forwarded packet meets, judged from `nft -j list
ruleset`: the first drop or reject is named by table, chain and rule; an
accept ends a chain; jumps are followed; a drop policy counts; what the
reader cannot judge is listed, never guessed; podnet's policy and nat
tables are left to their own judges."""
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.node.network import Mgmt, isolation_ruleset
from ansible.module_utils.podnet.kernel.nfteval import judge

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


def test_a_routed_pod_sending_from_another_address_is_dropped_before_conntrack():
    """A ptp chain's pod is a routed veth, which the bridge-family source
    guard never sees: isolation's prerouting keeps it to the address the
    node routes back through that veth."""
    chains, rules = isolation_ruleset('10.42.0.0/16', None, [])
    table = ruleset('inet', 'podnet-isolation', chains, rules)
    assert judged(table) == (None, [])
    assert judged(table, packet=dict(PACKET, reverse_path=False)) == (
        'inet podnet-isolation chain prerouting rule 0', [])
    on_cni0 = dict(PACKET, iif='cni0', reverse_path=False)  # the bridge guard's, at the port
    assert judged(table, packet=on_cni0) == (None, [])


def test_podnet_policy_and_nat_are_left_to_their_judges():
    policy = ruleset('ip', 'podnet-policy', [FORWARD], [('fwd', [{'drop': None}])])
    assert judged(policy) == (None, [])


# -- the stages a packet meets: devices, bridge hooks, wildcards ----------------------
def chain(hook, **more):
    return dict({'name': hook, 'type': 'filter', 'hook': hook, 'prio': -10, 'policy': 'accept'}, **more)


def test_an_ingress_chain_judges_only_its_own_device():
    """A netdev ingress chain (issue 21) drops what enters its device, and
    nothing that enters another."""
    evil = ruleset('netdev', 'evil', [chain('ingress', dev='flannel.1')], [('ingress', [{'drop': None}])])
    from_remote = dict(PACKET, iif='flannel.1', oif='cni0')
    assert judged(evil, packet=from_remote) == ('netdev evil chain ingress rule 0', [])
    assert judged(evil) == (None, [])
    on_two = ruleset('netdev', 'evil', [chain('ingress', dev=['eth9', 'flannel.1'])], [('ingress', [{'drop': None}])])
    assert judged(on_two, packet=from_remote)[0] == 'netdev evil chain ingress rule 0'


def test_a_wildcard_name_matches_as_nft_matches_it():
    """`iifname "veth*"` is a prefix; `"veth\\*"` is a name with a star."""
    for pattern, dropped in (('veth*', True), ('vethx*', False), ('veth\\*', False), ('veth00000002', True)):
        evil = ruleset('inet', 'evil', [FORWARD], [('fwd', [nft.meta_match('iifname', '==', pattern),
                                                           {'drop': None}])])
        assert (judged(evil)[0] is not None) == dropped, pattern


def test_a_bridged_frame_meets_the_bridge_hooks_with_its_ports_and_the_ip_hooks_on_the_bridge():
    from ansible.module_utils.podnet.kernel.nfteval import POD_PORT, bridged
    frame = dict(PACKET, dst='10.42.0.3', stages=bridged(POD_PORT, POD_PORT, 'cni0'))
    on_ports = ruleset('bridge', 'evil', [chain('prerouting')], [('prerouting', [
        nft.meta_match('iifname', '==', 'veth*'), {'drop': None}])])
    assert judged(on_ports, packet=frame) == ('bridge evil chain prerouting rule 0', [])
    on_bridge = ruleset('ip', 'evil', [FORWARD], [('fwd', [nft.meta_match('iifname', '==', 'cni0'), {'drop': None}])])
    assert judged(on_bridge, packet=frame) == ('ip evil chain fwd rule 0', [])
    elsewhere = ruleset('bridge', 'evil', [chain('prerouting')], [('prerouting', [
        nft.meta_match('iifname', '==', 'eth0'), {'drop': None}])])
    assert judged(elsewhere, packet=frame) == (None, [])


def test_a_packet_for_the_node_meets_input_and_not_forward():
    from ansible.module_utils.podnet.kernel.nfteval import delivered
    vxlan = {'src': '10.11.1.12', 'dst': '10.11.1.11', 'protocol': 'udp', 'dport': 8472,
             'stages': delivered('eth0')}
    drop_8472 = [nft.match('udp', 'dport', '==', 8472), {'drop': None}]
    on_input = ruleset('inet', 'evil', [chain('input')], [('input', drop_8472)])
    on_forward = ruleset('inet', 'evil', [chain('forward')], [('forward', drop_8472)])
    assert judged(on_input, packet=vxlan) == ('inet evil chain input rule 0', [])
    assert judged(on_forward, packet=vxlan) == (None, [])


def test_nat_chains_are_not_judged_for_drops():
    nat = ruleset('ip', 'theirs', [dict(FORWARD, type='nat', hook='postrouting')], [('fwd', [{'drop': None}])])
    assert judged(nat) == (None, [])
