"""Benchmark: a pod's network through podnet-cni, exec'd per ADD and per DEL
as a runtime does, beside podnet's native wiring and the reference
Debian `bridge` plugin with `host-local` IPAM, exec'd the same way, in one
run (issue 24's performance goal: podnet-cni at or under 0.5x the
reference, per ADD and per DEL).

Each CNI call is timed alone: the bench, playing the runtime, makes the
container's network namespace first and removes it after the DEL, as
podman does, outside the clock. podnet-cni and the reference take turns,
call by call (a busy moment of the machine hits both alike). Figures are
medians over N calls.
  podnet-cni          the executable (roles/cni/files/podnet-cni), served by
                      the node's resident server (started by the first call,
                      which is timed apart: it runs in Python, direct)
  podnet-cni direct   the same with PODNET_CNI_SERVER=0: Python per call
  reference           /usr/lib/cni/bridge (isGateway, hairpinMode) with
                      host-local, the same bridge, MTU and subnet size
  native              podnet's pods module wiring N pods in one call
                      (sandbox and pause included), per pod; its removal
Everything runs in a throwaway node (new network, mount and PID
namespaces, a private /run and /var/lib/podnet), so nothing outlives it.

usage: python bench/cni_bench.py [N]   (default 100)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = str(ROOT / 'roles' / 'cni' / 'files' / 'podnet-cni')
CNI_BIN = '/usr/lib/cni'
INNER = 'PODNET_CNI_BENCH_INNER'
GOAL = 0.5
MTU = 1450
VERSION = '1.0.0'  # the newest Debian's bridge speaks (podman's libcni stops there too)


def node_network():
    for argv in (['mount', '-t', 'tmpfs', 'tmpfs', '/run'], ['mkdir', '-p', '/var/lib/podnet'],
                 ['mount', '-t', 'tmpfs', 'tmpfs', '/var/lib/podnet'], ['ip', 'link', 'set', 'lo', 'up']):
        subprocess.run(argv, check=True)
    for bridge, gateway in (('cni0', '10.42.1.1/24'), ('cni1', '10.42.2.1/24')):
        for argv in (['ip', 'link', 'add', bridge, 'mtu', str(MTU), 'type', 'bridge'],
                     ['ip', 'addr', 'add', gateway, 'dev', bridge], ['ip', 'link', 'set', bridge, 'up']):
            subprocess.run(argv, check=True)
    with open('/var/lib/podnet/pod-cidr', 'w') as f:
        f.write('10.42.1.0/24\n')


def exec_calls(variants, count):
    """{variant: ([ADD seconds], [DEL seconds])} of count containers each,
    every call timed alone; the variants take turns, call by call, so that
    a busy moment of the machine hits each alike.
    variants: {name: (argv, config bytes, extra environment)}."""
    took = {name: ([], []) for name in variants}
    for verb, column in (('ADD', 0), ('DEL', 1)):
        for i in range(count):
            for name, (argv, conf, extra) in variants.items():
                container = '%s%d' % (name, i)
                if verb == 'ADD':
                    subprocess.run(['ip', 'netns', 'add', container], check=True)
                env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=container,
                           CNI_NETNS='/run/netns/' + container, CNI_IFNAME='eth0', CNI_PATH=CNI_BIN, **extra)
                start = time.perf_counter()
                done = subprocess.run(argv, input=conf, env=env, capture_output=True)
                took[name][column].append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise RuntimeError('%s %s: %s' % (name, verb, done.stdout.decode() + done.stderr.decode()))
    for name in variants:
        for i in range(count):
            subprocess.run(['ip', 'netns', 'del', '%s%d' % (name, i)], check=True)
    return took


def first_call():
    """Seconds of the first ADD and DEL on a node: no server yet (Python, direct)."""
    subprocess.run(['ip', 'netns', 'add', 'first'], check=True)
    took = []
    for verb in ('ADD', 'DEL'):
        env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID='first', CNI_NETNS='/run/netns/first',
                   CNI_IFNAME='eth0', CNI_PATH=CNI_BIN)
        start = time.perf_counter()
        subprocess.run([PLUGIN], input=podnet_conf(), env=env, capture_output=True, check=True)
        took.append(time.perf_counter() - start)
        time.sleep(0.5)  # the server the first call started comes up
    subprocess.run(['ip', 'netns', 'del', 'first'], check=True)
    return took


def podnet_conf():
    return json.dumps({'cniVersion': VERSION, 'name': 'podnet', 'type': 'podnet-cni', 'bridge': 'cni0'}).encode()


def reference_conf(state):
    return json.dumps({'cniVersion': VERSION, 'name': 'bench', 'type': 'bridge', 'bridge': 'cni1',
                       'isGateway': True, 'hairpinMode': True, 'ipMasq': False, 'mtu': MTU,
                       'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.42.2.0/24'}]],
                                'dataDir': os.path.join(state, 'host-local')}}).encode()


def native(count, state):
    """(setup, teardown) seconds per pod of the pods module's own wiring."""
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (makes module_utils importable)
    from ansible.module_utils.podnet.pods.reconciler import PodsReconciler

    def run(argv, data=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    wanted = {'bench/p%d' % i: {'namespace': 'bench', 'name': 'p%d' % i, 'labels': {}, 'containers': []}
              for i in range(count)}
    figures = []
    for pods in (wanted, {}):
        node = PodsReconciler(state, '10.42.3.0/24', MTU, run, pods, hierarchies={})
        current = node.read()
        start = time.perf_counter()
        node.apply(node.plan(current), current)
        figures.append((time.perf_counter() - start) / count)
    return figures


def native_bridge():
    """The native run's own cni0 (the pods module finds the bridge by name):
    cni0 moves aside for it."""
    for argv in (['ip', 'link', 'set', 'cni0', 'name', 'cnibench'], ['ip', 'link', 'add', 'cni0', 'mtu', str(MTU),
                 'type', 'bridge'], ['ip', 'addr', 'add', '10.42.3.1/24', 'dev', 'cni0'],
                 ['ip', 'link', 'set', 'cni0', 'up']):
        subprocess.run(argv, check=True)


def inner(count):
    node_network()
    with tempfile.TemporaryDirectory(prefix='podnet-cni-bench-', dir='/run') as state:
        first = first_call()
        took = exec_calls({'ref': ([CNI_BIN + '/bridge'], reference_conf(state), {}),
                           'pn': ([PLUGIN], podnet_conf(), {})}, count)
        podnet, reference = took['pn'], took['ref']
        direct = exec_calls({'pd': ([PLUGIN], podnet_conf(), {'PODNET_CNI_SERVER': '0'})}, max(count // 5, 5))['pd']
        native_bridge()
        setup, teardown = native(count, os.path.join(state, 'native'))
    report(count, first, podnet, direct, reference, (setup, teardown))


def report(count, first, podnet, direct, reference, native_figures):
    ms = lambda seconds: 1000 * seconds  # noqa: E731
    ref = [statistics.median(calls) for calls in reference]
    print('CNI ADD and DEL, exec per call, median of %d' % count)
    print('  %-44s %8s %8s' % ('', 'ADD ms', 'DEL ms'))
    print('  %-44s %8.1f %8.1f' % ('reference: bridge + host-local (Go)', ms(ref[0]), ms(ref[1])))
    for name, calls in (('podnet-cni (shim + resident server)', podnet),
                        ('podnet-cni direct (PODNET_CNI_SERVER=0)', direct)):
        med = [statistics.median(c) for c in calls]
        print('  %-44s %8.1f %8.1f   ratio %.2f / %.2f' % (name, ms(med[0]), ms(med[1]), med[0] / ref[0],
                                                         med[1] / ref[1]))
    print('  %-44s %8.1f %8.1f' % ('podnet-cni first call (starts the server)', ms(first[0]), ms(first[1])))
    print('  %-44s %8.1f %8.1f' % ('native: pods module, one call, per pod', ms(native_figures[0]),
                                   ms(native_figures[1])))
    med = [statistics.median(c) for c in podnet]
    verdicts = ['%s %.2f (%s)' % (verb, m / r, 'met' if m / r <= GOAL else 'NOT met')
                for verb, m, r in zip(('ADD', 'DEL'), med, ref)]
    print('  goal: podnet-cni at or under %.1fx the reference: %s' % (GOAL, ', '.join(verdicts)))


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if os.environ.get(INNER):
        return inner(count)
    argv = ['unshare', '--net', '--mount', '--pid', '--fork', '--kill-child', '--mount-proc',
            '--propagation', 'private', sys.executable, __file__, str(count)]
    return subprocess.run(argv, env=dict(os.environ, **{INNER: '1'})).returncode


if __name__ == '__main__':
    sys.exit(main())
