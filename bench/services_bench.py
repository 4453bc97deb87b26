"""Benchmark: Services in nftables at 1,000 Services, against one Service.

1. Compile and load. For the 20-node scale cluster (1,000 pods) with 1 and
   with 1,000 Services of 5 endpoints each: ruleset.compile_node() for each
   node, then the table loaded by `nft -f` into a throwaway network
   namespace. Goal (issue 23): compile and load under 0.5 s per node. A
   second compile from the same cluster gives the same text, which is what
   keeps a second converge at changed=0 (podnet_services compares digests).
2. Connection setup through a ClusterIP, with 1 and with 1,000 Services
   loaded, in the same run: TCP connects to a ClusterIP in a throwaway
   namespace whose table DNATs to local listeners, rounds alternating so
   the machine's drift hits both alike. Goal: with 1,000 Services within
   10% of one, as verdict maps make the lookup O(1).

usage: python bench/services_bench.py [--services N] [--connects K] [--rounds R]
"""
import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tests'))
import podnet_testlib  # noqa: E402,F401  (makes module_utils importable)
from ansible.module_utils.podnet.services import endpoints, ruleset, spec  # noqa: E402

NODES = ['node%d' % i for i in range(1, 21)]
ENDPOINTS = 5
PORT = 8080


def cluster(service_count, pod_count=1000):
    """(services as the plan gives them, pods, running): service i selects
    the 5 pods labelled svc=i."""
    pods, running = [], {}
    for i in range(pod_count):
        name = 'p%d' % i
        pods.append({'namespace': 'default', 'name': name, 'node': NODES[i % len(NODES)],
                     'labels': {'svc': str(i // ENDPOINTS % max(service_count, 1))},
                     'ports': [{'name': 'http', 'containerPort': PORT, 'protocol': 'TCP'}]})
        running['default/' + name] = '10.42.%d.%d' % (i % len(NODES), 2 + i // len(NODES))
    raw = [spec.Service('default', 's%d' % i, 'ClusterIP', None, {'svc': str(i)},
                        (spec.ServicePort('http', 'TCP', 80, 'http'),), subject='Service default/s%d' % i)
           for i in range(service_count)]
    return spec.plan(raw), pods, running


def compile_and_load(service_count):
    services, pods, running = cluster(service_count)
    started = time.perf_counter()
    found = endpoints.resolve(services, pods, running, ())
    texts = {node: ruleset.compile_node(services, found, node, '10.11.1.%d' % (i + 1), '10.42.0.0/16')
             for i, node in enumerate(NODES)}
    compiled = (time.perf_counter() - started) / len(NODES)
    started = time.perf_counter()
    subprocess.run(['unshare', '--net', 'nft', '-f', '-'], input=texts['node1'], text=True, check=True)
    loaded = time.perf_counter() - started
    again = endpoints.resolve(services, pods, running, ())
    same = texts['node1'] == ruleset.compile_node(services, again, 'node1', '10.11.1.1', '10.42.0.0/16')
    return compiled, loaded, same


# -- connection setup, inside `unshare --net` (this script runs itself there) --------------
def local_table(service_count):
    """A table whose Services DNAT to listeners on lo (127.0.0.1-5)."""
    services, _, _ = cluster(service_count, pod_count=0)
    found = {'%(namespace)s/%(name)s' % s: [{'pod': 'default/e%d' % j, 'ip': '127.0.0.%d' % (j + 1), 'node': 'node1',
                                             'hostname': 'e', 'subdomain': None, 'ports': {'http': PORT}}
                                            for j in range(ENDPOINTS)] for s in services}
    return services, ruleset.compile_node(services, found, 'node1', '127.0.0.1', '10.42.0.0/16')


def serve():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('0.0.0.0', PORT))
    listener.listen(1024)

    def accept():
        while True:
            listener.accept()[0].close()
    threading.Thread(target=accept, daemon=True).start()


def connects(address, count):
    started = time.perf_counter()
    for _ in range(count):
        with socket.create_connection((address, 80), timeout=2):
            pass
    return (time.perf_counter() - started) / count


def inside(service_count, count, rounds):
    """Seconds per connect with one Service loaded and with service_count,
    alternating rounds; run in a fresh network namespace."""
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    subprocess.run(['ip', 'route', 'add', spec.SERVICE_CIDR, 'dev', 'lo'], check=True)
    serve()
    tables = {n: local_table(n) for n in (1, service_count)}
    times = {1: [], service_count: []}
    for _ in range(rounds):
        for n, (services, text) in tables.items():
            subprocess.run(['nft', '-f', '-'], input='add table %s\ndelete table %s\n%s' % (
                ruleset.TABLE, ruleset.TABLE, text), text=True, check=True)
            target = services[len(services) // 2]['cluster_ip']
            connects(target, count // 10)  # warm the caches
            times[n].append(connects(target, count))
    return {n: statistics.median(t) for n, t in times.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--services', type=int, default=1000)
    parser.add_argument('--connects', type=int, default=2000)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--inside', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.services, args.connects, args.rounds)))
        return
    print('services bench: 1,000 pods on %d nodes, %d endpoints a Service' % (len(NODES), ENDPOINTS))
    for count in (1, args.services):
        compiled, loaded, same = compile_and_load(count)
        print('  %5d Services: compile %.3f s a node, load %.3f s, total %.3f s (goal < 0.5 s); '
              'second compile %s' % (count, compiled, loaded, compiled + loaded,
                                     'identical: changed=0' if same else 'DIFFERS'))
    out = subprocess.run(['unshare', '--net', sys.executable, __file__, '--inside', '--services',
                          str(args.services), '--connects', str(args.connects), '--rounds', str(args.rounds)],
                         capture_output=True, text=True, check=True).stdout
    per = {int(k): v for k, v in json.loads(out).items()}
    one, many = per[1], per[args.services]
    print('  connection setup through a ClusterIP (median of %d rounds of %d): %.1f us with 1 Service, '
          '%.1f us with %d: %+.1f%% (goal within 10%%)' % (args.rounds, args.connects, one * 1e6, many * 1e6,
                                                          args.services, (many / one - 1) * 100))


if __name__ == '__main__':
    main()
