"""Benchmark: pod setup for N pods on one node in one call, against the
reference CNI bridge plugin, in the same run.

Reference ("CNI bridge"): what a container runtime does per pod with the
Debian package containernetworking-plugins: `ip netns add`, then the
`bridge` plugin (with `host-local` IPAM) invoked with CNI_COMMAND=ADD.
podnet: PodsReconciler.apply() creating the same N pods in one call: sandbox
namespace bound under /run/netns, pause process, veth on cni0, address
from host-local style IPAM, lo up, default route. Both run on a bridge of
their own in a throwaway node: new network, mount and PID namespaces (with
a private /run), so nothing outlives the benchmark.

With a container, podnet runs three times over, interleaved with the same
without cgroups and without seccomp, and each counts its best run: what a
piece costs is the difference (the isolation of issue 21 in figures).

Two floors, in the same run, from one running process (no exec, no IPAM,
no records on disk, no pipe): no pod setup, by podnet or anyone, takes less.
  the network objects alone: what the reference makes for a pod (a network
    namespace bound under /run/netns, a veth with eth0's MAC, MTU, address
    and default route inside, its host end on a bridge), with the
    spawner's own netlink code;
  + the pause process and its namespaces: the spawner's own sandbox call,
    which adds what every pod has in the seed's walkthrough (`lsns` shows
    /pause alone in its PID namespace) and the reference leaves out: the
    pause process in new UTS, IPC and PID namespaces.

usage: python bench/pods_bench.py [N]   (default 100)
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CNI_BIN = '/usr/lib/cni'
INNER = 'PODNET_BENCH_INNER'
SETUP_GOAL = 0.1  # podnet's pod setup over the reference's (issue "Scale")
REPEAT = 3  # runs of each variant with a container; the best counts (noise only adds)
SETTLE = 1.0  # seconds between runs: the kernel frees the last run's namespaces in the background


def cni_reference(count, state):
    conf = json.dumps({
        'cniVersion': '1.0.0', 'name': 'bench', 'type': 'bridge', 'bridge': 'cni1',
        'isGateway': True, 'ipMasq': False, 'mtu': 1450,
        'ipam': {'type': 'host-local', 'ranges': [[{'subnet': '10.42.201.0/24'}]],
                 'dataDir': os.path.join(state, 'cni-ipam')}})
    start = time.perf_counter()
    for i in range(count):
        netns = 'bench-cni-%d' % i
        subprocess.run(['ip', 'netns', 'add', netns], check=True)
        env = dict(os.environ, CNI_COMMAND='ADD', CNI_CONTAINERID='bench%d' % i,
                   CNI_NETNS='/run/netns/' + netns, CNI_IFNAME='eth0', CNI_PATH=CNI_BIN)
        done = subprocess.run([CNI_BIN + '/bridge'], input=conf, env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError('bridge plugin: %s' % done.stdout + done.stderr)
    return time.perf_counter() - start


def floors(count):
    """Seconds to make count pods' network objects alone, then as many whole
    sandboxes with the spawner's own call (see above)."""
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (makes module_utils importable)
    from ansible.module_utils.podnet.kernel import linux
    from ansible.module_utils.podnet.pods import spawner
    from ansible.module_utils.podnet.kernel.rawnl import IFLA_MASTER, Rtnl, _attr

    subprocess.run(['ip', 'link', 'add', 'floorbr', 'type', 'bridge'], check=True)
    bridge = socket.if_nametoindex('floorbr')
    home = {flag: os.open('/proc/self/ns/%s' % name, os.O_RDONLY)
            for flag, name in spawner.SANDBOX_NAMESPACES.items()}
    rtnl = Rtnl()

    def request(i):
        return {'netns': '/run/netns/bench-floor-%d' % i, 'hostname': 'floor%d' % i, 'veth': 'floor%d' % i,
                'mtu': 1450, 'mac': '02:00:0a:2a:%02x:%02x' % divmod(i, 256), 'bridge': bridge,
                'cidr': '10.42.%d.%d/16' % (202 + i // 250, 1 + i % 250),
                'broadcast': '10.42.255.255', 'gateway': '10.42.202.254'}

    def network_only(req):
        os.close(os.open(req['netns'], os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        linux.check(linux.libc.unshare(linux.CLONE_NEWNET), 'unshare')
        linux.mount('/proc/self/ns/net', req['netns'], None, linux.MS_BIND)
        spawner.wire_pod_side(req, home[linux.CLONE_NEWNET])
        spawner._go_home({linux.CLONE_NEWNET: home[linux.CLONE_NEWNET]})
        rtnl.set_link(ifname=req['veth'], attrs=_attr(IFLA_MASTER, struct.pack('=I', bridge)))

    took = []
    for make, first in ((network_only, 0), (lambda req: spawner.spawn_sandbox(req, home, rtnl), count)):
        start = time.perf_counter()
        for i in range(first, first + count):
            make(request(i))
        took.append(time.perf_counter() - start)
    return took


def podnet_pods(count, state, containers, cgroups=True, seccomp='RuntimeDefault'):
    """cgroups False: no pod or container cgroups; seccomp Unconfined: no
    filter (what each costs, measured by leaving it out)."""
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (makes module_utils importable)
    from ansible.module_utils.podnet.node.network import NetworkSpec, NodeNetwork
    from ansible.module_utils.podnet.core.reconcile import Action
    from ansible.module_utils.podnet.pods.reconciler import PodsReconciler

    def run(argv, data=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    spec = NetworkSpec(state, '10.42.1.0/24', '10.42.0.0/16', 1450, None, None, [])
    NodeNetwork(run, spec).do_set_bridge(Action('set_bridge', 'cni0', 'bench'), None)
    container = {'name': 'c', 'argv': ['sleep', '3600'], 'seccomp': seccomp}
    wanted = {'bench/p%d' % i: {'namespace': 'bench', 'name': 'p%d' % i, 'labels': {},
                                'containers': [container] * containers}
              for i in range(count)}

    def pods(wanted):
        return PodsReconciler(state, '10.42.1.0/24', 1450, run, wanted, hierarchies=None if cgroups else {})
    figures = {}
    node = pods(wanted)
    current = node.read()
    start = time.perf_counter()
    node.apply(node.plan(current), current)
    figures['setup'] = time.perf_counter() - start
    start = time.perf_counter()
    actions = node.plan(node.read())
    figures['recheck'] = time.perf_counter() - start
    assert actions == [], actions
    gone = pods({})
    current = gone.read()
    start = time.perf_counter()
    gone.apply(gone.plan(current), current)
    figures['teardown'] = time.perf_counter() - start
    return figures


def inner(count):
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    with tempfile.TemporaryDirectory(prefix='podnet-bench-') as state:
        sandbox_only = podnet_pods(count, os.path.join(state, 'a'), containers=0)
        variants = {'full': {}, 'no_cgroups': {'cgroups': False}, 'no_seccomp': {'seccomp': 'Unconfined'}}
        runs = {name: [] for name in variants}
        for repeat in range(REPEAT):  # interleaved, so a busy moment of the machine hits each alike
            for name, options in variants.items():
                time.sleep(SETTLE)
                runs[name].append(podnet_pods(count, os.path.join(state, '%s%d' % (name, repeat)),
                                              containers=1, **options))
        with_container, no_cgroups, no_seccomp = (min(runs[n], key=lambda f: f['setup']) for n in variants)
        spread = {n: ' '.join('%.1f' % (1000 * f['setup'] / count) for f in runs[n]) for n in variants}
        reference = cni_reference(count, state)
        floor, spawner_alone = floors(count)  # last: what they leave goes with the throwaway node
    per_pod = lambda seconds: 1000 * seconds / count  # noqa: E731
    print('%d pods on one node' % count)
    print('  CNI bridge plugin (ip netns add + bridge ADD)  %7.1f ms/pod  (%.2f s)' % (per_pod(reference), reference))
    print('  podnet, sandbox + network, one call           %7.1f ms/pod  (%.2f s)  ratio %.2f (goal <= %.2f: %s)'
          % (per_pod(sandbox_only['setup']), sandbox_only['setup'], sandbox_only['setup'] / reference,
             SETUP_GOAL, 'met' if sandbox_only['setup'] / reference <= SETUP_GOAL else 'NOT met'))
    print('  floor: the network objects alone            %7.1f ms/pod  (%.2f s)  ratio %.2f'
          % (per_pod(floor), floor, floor / reference))
    print('  floor: + the pause process and its namespaces %5.1f ms/pod  (%.2f s)  ratio %.2f'
          % (per_pod(spawner_alone), spawner_alone, spawner_alone / reference))
    print('  podnet, same + one container per pod, best of %d %4.1f ms/pod  (%.2f s)  ratio %.2f'
          % (REPEAT, per_pod(with_container['setup']), with_container['setup'], with_container['setup'] / reference))
    for piece, without in (('cgroups (pod, pause, container; limits; join)', no_cgroups),
                           ('seccomp (RuntimeDefault, installed per container)', no_seccomp)):
        print('    of which %-48s %5.1f ms/pod  (same without it: %.1f ms/pod)'
              % (piece, per_pod(with_container['setup'] - without['setup']), per_pod(without['setup'])))
    print('    every run, ms/pod: ' + '; '.join('%s %s' % item for item in spread.items()))
    print('  re-check of %d unchanged pods                 %7.3f s  (goal < 0.2 s)'
          % (count, with_container['recheck']))
    print('  podnet teardown, one call                      %7.1f ms/pod  (goal: at most setup, %.1f ms/pod: %s)'
          % (per_pod(with_container['teardown']), per_pod(with_container['setup']),
             'met' if with_container['teardown'] <= with_container['setup'] else 'NOT met'))


def own_cgroups(entries):
    """In the throwaway node: its cgroup as the root of each hierarchy, as a
    lab node has it (cgroups.node_cgroups), so pods' cgroups go below it."""
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/sys/fs/cgroup'], check=True)
    for entry in entries:
        os.makedirs(entry['mount'], exist_ok=True)
        options = ['-o', entry['options']] if entry['options'] else []
        subprocess.run(['mount', '-t', entry['type']] + options + ['cgroup', entry['mount']], check=True)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if os.environ.get(INNER):
        own_cgroups(json.loads(os.environ[INNER]))
        return inner(count)
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (makes module_utils importable)
    from ansible.module_utils.podnet.kernel import cgroups
    hierarchies = cgroups.read_hierarchies()
    entries = cgroups.node_cgroups('bench', str(os.getpid()), hierarchies)
    for entry in entries:
        cgroups.prepare_node(entry)
    # A throwaway node: its namespaces, and every process in them, end with
    # it; its cgroups (joined before the cgroup namespace is made) after it.
    argv = ['unshare', '--net', '--mount', '--pid', '--cgroup', '--fork', '--mount-proc',
            '--propagation', 'private', sys.executable, __file__, str(count)]
    join = 'for f in "$@"; do echo $$ > "$f"; done; exec %s' % ' '.join(argv)
    try:
        return subprocess.run(['sh', '-c', join, 'sh'] + [e['dir'] + '/cgroup.procs' for e in entries],
                              env=dict(os.environ, **{INNER: json.dumps(entries)})).returncode
    finally:
        cgroups.remove_lab('bench', hierarchies)


if __name__ == '__main__':
    sys.exit(main())
