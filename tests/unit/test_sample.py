"""The conformance suite's sample at scale (conformance.conftest.Sample)."""
from collections import namedtuple

from conformance.conftest import Sample

Pod = namedtuple('Pod', 'key node')


def cluster(nodes, per_node):
    return {'ns/p%d-%d' % (n, i): Pod('ns/p%d-%d' % (n, i), 'node%d' % n)
            for n in range(nodes) for i in range(per_node)}


def test_without_a_size_every_pod_and_every_pair_of_two_pods():
    pods = cluster(2, 2)
    every = Sample()
    assert every.pods(pods) == list(pods.values())
    pairs = every.pairs(list(pods.values()), list(pods.values()))
    assert len(pairs) == 4 * 3 and all(s is not t for s, t in pairs)


def test_a_sample_is_that_many_distinct_pairs_across_nodes_the_same_each_run():
    pods = list(cluster(20, 50).values())
    pairs = Sample(200, seed=3).pairs(pods, pods)
    assert len(pairs) == 200 and all(s.node != t.node for s, t in pairs)
    assert len({(s.key, t.key) for s, t in pairs}) == 200
    assert pairs == Sample(200, seed=3).pairs(pods, pods) != Sample(200, seed=4).pairs(pods, pods)


def test_a_sample_larger_than_the_pairs_across_nodes_takes_them_all():
    pods = list(cluster(2, 3).values())
    assert len(Sample(200).pairs(pods, pods)) == 2 * 3 * 3


def test_a_sample_of_pods():
    pods = cluster(20, 50)
    picked = Sample(30, seed=1).pods(pods)
    assert len(picked) == len(set(p.key for p in picked)) == 30
    assert Sample(30).pods(cluster(2, 2)) == list(cluster(2, 2).values())
