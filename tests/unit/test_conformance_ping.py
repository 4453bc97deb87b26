"""conformance.conftest.unreachable: pings lost in a burst (a small
machine's per-CPU backlog overflows at hundreds at once) are tried again;
an address that answers neither is unreachable."""
from conformance.conftest import unreachable


class Host:
    """Answers each ping loop with the addresses the next round loses."""

    def __init__(self, *rounds):
        self.rounds, self.loops = list(rounds), []

    def check_output(self, command):
        self.loops.append(command)
        return '\n'.join(self.rounds.pop(0))


def test_a_ping_lost_in_the_burst_is_tried_again():
    host = Host(['10.42.1.5', '10.42.2.7'], [])
    assert unreachable(host, ['10.42.1.5', '10.42.2.7', '10.42.3.9']) == []
    assert len(host.loops) == 2 and '10.42.3.9' not in host.loops[1]


def test_an_address_lost_twice_is_unreachable():
    host = Host(['10.42.1.5', '10.42.2.7'], ['10.42.2.7'])
    assert unreachable(host, ['10.42.1.5', '10.42.2.7'], 'ip netns exec cni-1 ', '-M do -s 1422') \
        == ['10.42.2.7']
    assert 'ip netns exec cni-1 ping -c1 -W2 -q -M do -s 1422 "$a"' in host.loops[1]


def test_nothing_lost_is_one_round():
    host = Host([])
    assert unreachable(host, ['10.42.1.5']) == [] and len(host.loops) == 1
