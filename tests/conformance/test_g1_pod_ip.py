"""G1: every pod has its own IP from its node's pod CIDR (cluster CIDR
10.42.0.0/16 split into /24 per node), reachable from every pod and node."""
import functools
import ipaddress

from conformance.conftest import at_once, unreachable, unreachable_from

CLUSTER = ipaddress.IPv4Network('10.42.0.0/16')


def test_each_node_has_its_own_slash24_of_the_cluster_cidr(pod_cidrs):
    networks = [ipaddress.IPv4Network(c) for c in pod_cidrs.values()]
    assert all(n.prefixlen == 24 and n.subnet_of(CLUSTER) for n in networks), pod_cidrs
    assert len(set(networks)) == len(networks), pod_cidrs


def test_each_pod_ip_is_unique_and_from_its_node_cidr(pods, pod_cidrs):
    ips = [p.ip for p in pods.values()]
    assert len(set(ips)) == len(ips)
    for pod in pods.values():
        assert ipaddress.IPv4Address(pod.ip) in ipaddress.IPv4Network(pod_cidrs[pod.node]), pod


def test_the_pod_ip_sits_on_the_pod_eth0(pods, sample):
    for pod in sample.pods(pods):
        assert ' %s/24 ' % pod.ip in pod.run('ip -o -4 addr show dev eth0').stdout, pod


def test_every_pod_reaches_every_other_pod(pods, report, sample):
    targets = {}
    for source, target in sample.pairs(list(pods.values()), list(pods.values())):
        targets.setdefault(source.key, []).append(target)
    assert targets, 'no pair of pods to ping (a sample takes pairs across nodes only)'
    missed = unreachable_from(pods, {key: [t.ip for t in found] for key, found in targets.items()})
    if not sample.size:
        keys = sorted(pods)
        report.grid('ping from pod (row) to pod (column)', keys,
                    {s: {t: None if s == t else pods[t].ip not in missed[s] for t in keys} for s in keys},
                    {s: {s: 'a pod to itself is not pinged'} for s in keys})
    assert {key: ips for key, ips in missed.items() if ips} == {}


def test_every_node_reaches_every_pod(nodes, pods, sample):
    ips = [p.ip for p in sample.pods(pods)]
    missed = at_once({name: functools.partial(unreachable, host, ips) for name, host in nodes.items()})
    assert ips and {name: lost for name, lost in missed.items() if lost} == {}
