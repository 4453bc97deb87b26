"""Benchmark: compile and apply 100 and 1,000 NetworkPolicies over 100 pods.

podnet: netpol_nft.compile_node() for one node (a third of the pods), then
the table loaded by `nft -j -f` into a throwaway network namespace.
Baseline ("naive"): one rule per allowed (source pod, destination pod,
protocol, port) of the node's isolated pods, computed with the policy
oracle netpol.allowed(), loaded the same way. Both in the same run.

usage: python bench/policy_bench.py [--pods N] [--nodes M] [POLICY_COUNT ...]
       (default: 100 pods on 3 nodes; 100 and 1000 policies)
Goal at scale (issue "Scale"): 1,000 pods on 20 nodes and 1,000 policies,
compile and load under 1 s per node (make bench-scale runs it).
"""
import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tests'))
import podnet_testlib  # noqa: E402,F401  (makes module_utils importable)
from ansible.module_utils.podnet.kernel import nft  # noqa: E402
from ansible.module_utils.podnet.policy import netpol, netpol_nft  # noqa: E402

NAMESPACES = ['ns%d' % i for i in range(10)]
PORTS = [80, 81, 443, 8080]


def cluster(pod_count=100, node_count=3):
    pods = []
    for i in range(pod_count):
        pods.append({'namespace': NAMESPACES[i % 10], 'name': 'p%d' % i, 'node': 'node%d' % (i % node_count),
                     'labels': {'app': 'app%d' % (i % 7), 'tier': ('web', 'db', 'cache')[i % 3]},
                     'ip': '10.42.%d.%d' % (i % node_count, 10 + i // node_count),
                     'ports': [{'name': 'http', 'containerPort': 80, 'protocol': 'TCP'}]})
    namespaces = {n: {'kubernetes.io/metadata.name': n, 'team': 't%d' % (i % 3)}
                  for i, n in enumerate(NAMESPACES)}
    return pods, namespaces


def policies(count, seed=7):
    rng = random.Random(seed)
    raw = []
    for i in range(count):
        peer = rng.choice([{'podSelector': {'matchLabels': {'app': 'app%d' % rng.randrange(7)}}},
                           {'namespaceSelector': {'matchLabels': {'team': 't%d' % rng.randrange(3)}}},
                           {'ipBlock': {'cidr': '10.42.%d.0/24' % rng.randrange(3)}}])
        raw.append({'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
                    'metadata': {'name': 'p%d' % i, 'namespace': rng.choice(NAMESPACES)},
                    'spec': {'podSelector': {'matchLabels': {'app': 'app%d' % rng.randrange(7)}},
                             'ingress': [{'from': [peer], 'ports': [
                                 {'protocol': 'TCP', 'port': rng.choice(PORTS)}]}]}})
    return [netpol.parse_policy(r) for r in raw]


def naive_rules(local, pods, namespaces, parsed):
    world = netpol.Cluster(pods, namespaces)
    rules = []
    for dst in local:
        if not netpol.isolating(dst, netpol.INGRESS, parsed):
            continue
        for src in pods:
            for port in PORTS:
                if netpol.allowed(src, dst, port, 'TCP', world, parsed):
                    rules.append(('forward', [
                        nft.match('ip', 'saddr', '==', src['ip']), nft.match('ip', 'daddr', '==', dst['ip']),
                        nft.match('tcp', 'dport', '==', port), {'accept': None}]))
    return rules


def load(chains, rules):
    """Seconds for nft to load the table into a throwaway network namespace."""
    commands = json.dumps(nft.table_commands(netpol_nft.FAMILY, netpol_nft.TABLE, chains, rules))
    start = time.perf_counter()
    subprocess.run(['unshare', '--net', 'nft', '-j', '-f', '-'], input=commands, text=True, check=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('--pods', type=int, default=100)
    parser.add_argument('--nodes', type=int, default=3)
    parser.add_argument('counts', type=int, nargs='*', default=[100, 1000])
    args = parser.parse_args(argv)
    pods, namespaces = cluster(args.pods, args.nodes)
    local = [p for p in pods if p['node'] == 'node0']
    print('%d pods on %d nodes, %d on the measured node' % (len(pods), args.nodes, len(local)))
    print('%-9s %-28s %-28s %s'
          % ('policies', 'podnet: rules, compile, load', 'naive: rules, build, load', 'rules ratio'))
    for count in args.counts:
        parsed = policies(count)
        start = time.perf_counter()
        chains, rules = netpol_nft.compile_node(local, pods, namespaces, parsed, [])
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        naive = naive_rules(local, pods, namespaces, parsed)
        naive_s = time.perf_counter() - start
        podnet_load = load(chains, rules)
        naive_load = load([dict(netpol_nft.BASE_CHAIN)], naive)
        print('%-9d %5d  %6.3f s  %6.3f s      %6d  %6.3f s  %6.3f s     %.3f' % (
            count, len(rules), compile_s, podnet_load, len(naive), naive_s, naive_load,
            len(rules) / max(len(naive), 1)))


if __name__ == '__main__':
    main()
