"""decide(): the verdict with its reasons, as explain and probe print them.
The yes or no is allowed()'s (held against hand-derived matrices in
test_netpol_compile); here: the policy and rule index that allow, every
policy that isolates a pod with no rule that allows, and both sides named
when both deny."""
from ansible.module_utils.podnet.policy.netpol import decide
from netpol_cases import (
    CLUSTER, DENY_ALL_X, DENY_EGRESS_X, DENY_INGRESS_X, EXTERNAL, NODE_IPS, PODS, labels, policy)

ALLOW_B_TO_A = policy('x/a-from-b', {'podSelector': labels(pod='a'), 'ingress': [
    {'from': [{'podSelector': labels(pod='c')}]},
    {'from': [{'podSelector': labels(pod='b')}], 'ports': [{'port': 80}]}]})


def test_no_policy_allows_and_says_neither_side_is_isolated():
    found = decide(PODS['x/a'], PODS['y/b'], 80, 'TCP', CLUSTER, [])
    assert found.allowed
    assert found.egress.reason == 'egress of x/a: not isolated (no policy selects it for Egress)'
    assert found.ingress.reason == 'ingress of y/b: not isolated (no policy selects it for Ingress)'


def test_an_allowing_rule_is_named_by_policy_and_index():
    found = decide(PODS['x/b'], PODS['x/a'], 80, 'TCP', CLUSTER, [DENY_INGRESS_X, ALLOW_B_TO_A])
    assert found.allowed
    assert (found.ingress.policies, found.ingress.rule) == (('x/a-from-b',), 1)
    assert found.ingress.reason == 'ingress of x/a: allowed by x/a-from-b ingress rule 1'


def test_a_denial_names_every_isolating_policy():
    found = decide(PODS['x/b'], PODS['x/a'], 81, 'TCP', CLUSTER, [ALLOW_B_TO_A, DENY_INGRESS_X])
    assert not found.allowed
    assert found.reason == 'ingress of x/a: isolated by x/a-from-b, x/deny-ingress, no rule allows'
    assert found.ingress.policies == ('x/a-from-b', 'x/deny-ingress')
    assert found.egress.allowed


def test_both_sides_denying_are_both_named():
    found = decide(PODS['x/a'], PODS['x/b'], 80, 'TCP', CLUSTER, [DENY_EGRESS_X, DENY_INGRESS_X])
    assert not found.allowed
    assert found.reason == ('egress of x/a: isolated by x/deny-egress, no rule allows; '
                            'ingress of x/b: isolated by x/deny-ingress, no rule allows')


def test_loopback_own_node_and_outside_have_their_reasons():
    x_a = PODS['x/a']
    assert decide(x_a, x_a['ip'], 80, 'TCP', CLUSTER, [DENY_ALL_X]).reason == \
        'x/a reaches itself over loopback, always allowed'
    node_ip = NODE_IPS[x_a['node']][1]
    found = decide(node_ip, x_a, 80, 'TCP', CLUSTER, [DENY_ALL_X])
    assert found.allowed and found.ingress.reason == \
        'ingress of x/a: %s is its own node, always allowed' % node_ip
    found = decide(EXTERNAL, PODS['y/a'], 80, 'TCP', CLUSTER, [DENY_ALL_X])
    assert found.egress.reason == 'egress of %s: not a pod, no policy applies' % EXTERNAL
