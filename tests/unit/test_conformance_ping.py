"""conformance.conftest's pings: lost in a burst (a small machine's per-CPU
backlog overflows at hundreds at once) they are tried again; an address
that answers neither is unreachable; a pod's namespace that cannot be
entered loses all its pings; the pods of a node ping in one round trip."""
import os
import re
import subprocess
from types import SimpleNamespace

from conformance.conftest import PINGS_AT_ONCE, unreachable, unreachable_each, unreachable_from

GROUP = re.compile(r'\((.*?)sh -c "for a in ([^;]*); do .*? done; wait; echo (\d+):ran"\)')


class Host:
    """Runs each ping script as its shell would, losing in each round the
    addresses given; a prefix naming a gone namespace prints nothing."""

    def __init__(self, *rounds, gone=()):
        self.rounds, self.loops, self.gone = list(rounds), [], gone

    def check_output(self, command):
        self.loops.append(command)
        lost, said = self.rounds.pop(0), []
        for prefix, addresses, index in GROUP.findall(command):
            if not any(name in prefix for name in self.gone):
                said += ['%s:%s' % (index, a) for a in addresses.split() if a in lost] + ['%s:ran' % index]
        return '\n'.join(said)


def test_a_ping_lost_in_the_burst_is_tried_again():
    host = Host(['10.42.1.5', '10.42.2.7'], [])
    assert unreachable(host, ['10.42.1.5', '10.42.2.7', '10.42.3.9']) == []
    assert len(host.loops) == 2 and '10.42.3.9' not in host.loops[1]


def test_an_address_lost_twice_is_unreachable():
    host = Host(['10.42.1.5', '10.42.2.7'], ['10.42.2.7'])
    assert unreachable(host, ['10.42.1.5', '10.42.2.7'], 'ip netns exec cni-1 ', '-M do -s 1422') \
        == ['10.42.2.7']
    assert 'ip netns exec cni-1 sh -c "for a in 10.42.1.5 10.42.2.7;' in host.loops[0]
    assert 'ping -c1 -W2 -q -M do -s 1422 \\$a' in host.loops[1]


def test_nothing_lost_is_one_round():
    host = Host([])
    assert unreachable(host, ['10.42.1.5']) == [] and len(host.loops) == 1


def test_a_namespace_that_cannot_be_entered_loses_all_its_pings():
    host = Host([], [], gone=['cni-gone'])
    assert unreachable_each(host, {'ip netns exec cni-gone ': ['10.42.1.5', '10.42.2.7'], '': ['10.42.3.9']}) \
        == {'ip netns exec cni-gone ': ['10.42.1.5', '10.42.2.7'], '': []}


def test_the_pods_of_a_node_ping_in_one_round_trip():
    hosts = {'node1': Host(['10.42.2.7']), 'node2': Host([])}
    pods = {key: SimpleNamespace(key=key, node=node, host=hosts[node], inside='ip netns exec cni-%s ' % key)
            for key, node in (('a', 'node1'), ('b', 'node1'), ('c', 'node2'))}
    hosts['node1'].rounds.append(['10.42.2.7'])
    assert unreachable_from(pods, {'a': ['10.42.2.7'], 'b': ['10.42.3.9'], 'c': ['10.42.1.5']}) \
        == {'a': ['10.42.2.7'], 'b': [], 'c': []}
    assert len(hosts['node1'].loops) == 2 and len(hosts['node2'].loops) == 1
    assert 'cni-a' in hosts['node1'].loops[0] and 'cni-b' in hosts['node1'].loops[0]


def test_many_pings_go_in_round_trips_of_a_bounded_size():
    addresses = ['10.42.%d.%d' % (i // 200, i % 200) for i in range(PINGS_AT_ONCE + 44)]
    host = Host([], [])
    assert unreachable(host, addresses) == []
    assert [sum(len(found.split()) for _, found, _ in GROUP.findall(loop)) for loop in host.loops] \
        == [PINGS_AT_ONCE, 44]


def test_the_pings_run_as_a_shell_runs_them(tmp_path):
    """The script through a real sh, with a stand-in ping that only
    10.42.1.x answers: its quoting holds, and `false` stands for a
    namespace that cannot be entered."""
    ping = tmp_path / 'ping'
    ping.write_text('#!/bin/sh\nfor a; do :; done\ncase "$a" in 10.42.1.*) exit 0;; *) exit 1;; esac\n')
    ping.chmod(0o755)
    env = dict(os.environ, PATH='%s:%s' % (tmp_path, os.environ['PATH']))

    class Local:
        def check_output(self, command):
            return subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                                  check=True).stdout
    found = unreachable_each(Local(), {'': ['10.42.1.5', '10.42.2.7'], 'env ': ['10.42.1.6', '10.42.3.9'],
                                       'false ': ['10.42.1.7']}, '-M do -s 1422')
    assert found == {'': ['10.42.2.7'], 'env ': ['10.42.3.9'], 'false ': ['10.42.1.7']}
