"""Compiled policy tables read back from a real nft equal what podnet wants.

podnet decides whether to rewrite the table by comparing nft.current_table()
(the kernel's `nft -j list table`, handles dropped) with nft.wanted_table();
so every expression compile_node() writes must come back exactly as written.
Each table is loaded into a throwaway network namespace (`unshare --net`),
listed there, and gone when the command exits; no traffic is sent and the
root namespace's nftables are never touched. Needs root, unshare and nft.
"""
import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.policy.netpol_nft import FAMILY, TABLE, compile_node
from netpol_cases import (
    CASES, DENY_ALL_X, NAMESPACES, NODE_IPS, PODS, big_cluster, compile_all, from_a, labels,
    policy, to_a)

LIST = 'nft -j list table %s %s' % (FAMILY, TABLE)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='loading nft tables into a namespace needs root'),
    pytest.mark.skipif(not shutil.which('unshare') or not shutil.which('nft'),
                       reason='needs unshare (util-linux) and nft (nftables)'),
]


@pytest.fixture(scope='module', autouse=True)
def namespaces_work():
    probe = subprocess.run(['unshare', '--net', 'nft', 'list', 'ruleset'],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip('cannot run nft in a new network namespace: %s' % probe.stderr.strip())


def in_throwaway_namespace(script, commands):
    """Run script in a new network namespace with the JSON on stdin."""
    result = subprocess.run(['unshare', '--net', 'sh', '-c', script], input=json.dumps(commands),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def read_back(chains, rules, script='nft -j -f - && ' + LIST):
    """nft.current_table() of the table as a kernel holds it after loading."""
    listing = in_throwaway_namespace(script, nft.table_commands(FAMILY, TABLE, chains, rules))

    def run(argv, data=None):
        assert argv == ['nft', '-j', 'list', 'table', FAMILY, TABLE]
        return 0, listing, ''
    return nft.current_table(run, FAMILY, TABLE)


def assert_round_trip(chains, rules):
    current = read_back(chains, rules)
    wanted = nft.wanted_table(chains, rules)
    if current != wanted:
        got, want = json.loads(current), json.loads(wanted)
        assert got[0] == want[0], 'chains differ'
        for index, (a, b) in enumerate(zip(got[1], want[1])):
            assert a == b, 'rule %d differs' % index
        assert len(got[1]) == len(want[1])
    assert not nft.needs_update(current, chains, rules)


@pytest.mark.parametrize('name, policies, probe, expected', CASES, ids=[c[0] for c in CASES])
def test_every_model_case_reads_back_unchanged(name, policies, probe, expected):
    for chains, rules in compile_all(policies).values():
        assert_round_trip(chains, rules)


def stress_policies():
    return [
        DENY_ALL_X,
        policy('y/servers', {
            'podSelector': {'matchExpressions': [{'key': 'role', 'operator': 'In',
                                                  'values': ['server']}]},
            'ingress': [
                {'from': [{'namespaceSelector': labels(ns='x')},
                          {'podSelector': labels(role='client')},
                          {'ipBlock': {'cidr': '10.0.0.0/8', 'except': [
                              '10.42.0.0/16', '10.1.0.0/24', '10.1.1.0/24']}},
                          {'ipBlock': {'cidr': '2001:db8::/32'}},
                          {'ipBlock': {'cidr': '172.16.0.1/32'}}],
                 'ports': [{'port': 80}, {'port': 81, 'endPort': 90}, {'port': 85},
                           {'port': 91}, {'protocol': 'UDP', 'port': 53},
                           {'protocol': 'UDP', 'port': 'serve-81-udp'},
                           {'protocol': 'SCTP', 'port': 1, 'endPort': 65535}]},
                {'from': [{'ipBlock': {'cidr': '0.0.0.0/0', 'except': ['10.0.0.0/8']}}],
                 'ports': [{'protocol': 'TCP'}, {'protocol': 'UDP'}, {'protocol': 'SCTP'}]},
                {'ports': [{'port': 'serve-80-tcp'}, {'port': 'no-such-port'}]}],
            'egress': [
                {'to': [{'podSelector': {}, 'namespaceSelector': labels(ns='z')}],
                 'ports': [{'port': 'serve-80-tcp'}, {'port': 'serve-81-sctp',
                                                      'protocol': 'SCTP'}]},
                {'to': [{'ipBlock': {'cidr': '0.0.0.0/0'}}], 'ports': [{'port': 443}]},
                {'to': [{'ipBlock': {'cidr': '192.0.2.0/24', 'except': ['192.0.2.4/30']}}]}]}),
        policy('z/clients', {'podSelector': labels(role='client'), 'policyTypes': ['Egress'],
                             'egress': [{'to': [{'podSelector': labels(role='server')}]}]}),
        policy('z/open', {'podSelector': labels(role='server'), 'ingress': [{}]}),
    ]


def test_a_large_mixed_policy_set_reads_back_unchanged():
    pods = big_cluster(40)
    for index, pod in enumerate(pods.values()):  # named ports resolving to 7 numbers
        pod['ports'] = [dict(port, containerPort=8000 + index % 7) if port['name'] == 'serve-80-tcp'
                        else port for port in pod['ports']]
    tables = [compile_node([p for p in pods.values() if p['node'] == node],
                           list(pods.values()), NAMESPACES, stress_policies(), ips)
              for node, ips in NODE_IPS.items()]
    assert max(len(chains) for chains, _ in tables) >= 8
    assert max(len(rules) for _, rules in tables) > 40
    for chains, rules in tables:
        assert_round_trip(chains, rules)


def test_applying_twice_keeps_the_same_table():
    chains, rules = compile_all([DENY_ALL_X, to_a({'from': [{'podSelector': labels(pod='b')}]}),
                                 from_a({'ports': [{'port': 'serve-80-tcp'}]})])['node1']
    twice = 'j=$(cat); echo "$j" | nft -j -f - && echo "$j" | nft -j -f - && ' + LIST
    assert read_back(chains, rules, twice) == nft.wanted_table(chains, rules)


def test_a_changed_policy_set_is_seen_as_needing_an_update():
    before = compile_all([to_a({'from': [{'podSelector': labels(pod='b')}]})])['node1']
    after = compile_all([to_a({'from': [{'podSelector': labels(pod='c')}]})])['node1']
    current = read_back(*before)
    assert nft.needs_update(current, *after) and not nft.needs_update(current, *before)
    assert PODS  # the model the cases above are built on
