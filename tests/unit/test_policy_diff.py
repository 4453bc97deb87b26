"""The diff of podnet_policy is the node's table in `nft list table` syntax,
one line per rule, not a line of JSON (issue 7, "fix the diffs users read")."""
import pytest
from ansible.module_utils.podnet.core import reconcile
from ansible.module_utils.podnet.kernel import nft
from netpol_cases import CASES, compile_all

TABLE = 'ip podnet-policy'


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_every_compiled_table_reads_as_nft_rules(name, policies, probe, expected):
    for chains, rules in compile_all(policies).values():
        described = nft.describe(chains, rules)
        lines = [line for chain in described.values() for line in chain[1:]]
        assert len(lines) == len(rules)
        assert not [line for line in lines if '{"' in line], 'JSON left in %s' % lines


def test_the_diff_names_the_table_and_shows_a_rule_per_line():
    chains, rules = compile_all([CASES[1][1][0]])['node1']
    actions = nft.plan_table(TABLE, None, chains, rules)
    shown = reconcile.diff('podnet_policy', {TABLE: None},
                           {TABLE: nft.describe(chains, rules)}, actions)
    assert shown['prepared'] == 'set_table ip podnet-policy: missing\n'
    after = shown['after'].splitlines()
    assert after[:3] == ['ip podnet-policy:', '  forward:',
                         '  - type filter hook forward priority 0; policy accept']
    assert '  - ct state established,related accept' in after
    assert "  - 'ip daddr vmap { 10.42.1.10 : drop, 10.42.1.12 : drop }'" in after
