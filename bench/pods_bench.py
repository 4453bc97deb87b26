"""Benchmark: pod setup for N pods on one node in one call, against the
reference CNI bridge plugin, in the same run.

Reference ("CNI bridge"): what a container runtime does per pod with the
Debian package containernetworking-plugins: `ip netns add`, then the
`bridge` plugin (with `host-local` IPAM) invoked with CNI_COMMAND=ADD.
podnet: NodePods.apply() creating the same N pods in one call: sandbox
namespace bound under /run/netns, pause process, veth on cni0, address
from host-local style IPAM, lo up, default route. Both run on a bridge of
their own in a throwaway node: new network, mount and PID namespaces (with
a private /run), so nothing outlives the benchmark.

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
    from ansible.module_utils.podnet import spawner
    from ansible.module_utils.podnet.rawnl import IFLA_MASTER, Rtnl, _attr

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
        spawner._check(spawner.libc.unshare(spawner.CLONE_NEWNET), 'unshare')
        spawner._mount('/proc/self/ns/net', req['netns'], None, spawner.MS_BIND)
        spawner.wire_pod_side(req, home[spawner.CLONE_NEWNET])
        spawner._go_home({spawner.CLONE_NEWNET: home[spawner.CLONE_NEWNET]})
        rtnl.set_link(ifname=req['veth'], attrs=_attr(IFLA_MASTER, struct.pack('=I', bridge)))

    took = []
    for make, first in ((network_only, 0), (lambda req: spawner.spawn_sandbox(req, home, rtnl), count)):
        start = time.perf_counter()
        for i in range(first, first + count):
            make(request(i))
        took.append(time.perf_counter() - start)
    return took


def podnet_pods(count, state, containers):
    sys.path.insert(0, str(ROOT / 'tests'))
    import podnet_testlib  # noqa: F401  (makes module_utils importable)
    from ansible.module_utils.podnet.network import NetworkSpec, NodeNetwork
    from ansible.module_utils.podnet.reconcile import Action
    from ansible.module_utils.podnet.pods import NodePods

    def run(argv, data=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    spec = NetworkSpec(state, '10.42.1.0/24', '10.42.0.0/16', 1450, None, None, [])
    NodeNetwork(run, spec).apply([Action('set_bridge', 'cni0', 'bench')], None)
    node = NodePods(state, '10.42.1.0/24', 1450, run)
    wanted = {'bench/p%d' % i: {'namespace': 'bench', 'name': 'p%d' % i, 'labels': {},
                                'containers': [{'name': 'c', 'argv': ['sleep', '3600']}] * containers}
              for i in range(count)}
    figures = {}
    current = node.read_current()
    start = time.perf_counter()
    node.apply(node.plan(current, wanted), current, wanted)
    figures['setup'] = time.perf_counter() - start
    start = time.perf_counter()
    actions = node.plan(node.read_current(), wanted)
    figures['recheck'] = time.perf_counter() - start
    assert actions == [], actions
    current = node.read_current()
    start = time.perf_counter()
    node.apply(node.plan(current, {}), current, {})
    figures['teardown'] = time.perf_counter() - start
    return figures


def inner(count):
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run'], check=True)
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    with tempfile.TemporaryDirectory(prefix='podnet-bench-') as state:
        sandbox_only = podnet_pods(count, os.path.join(state, 'a'), containers=0)
        with_container = podnet_pods(count, os.path.join(state, 'b'), containers=1)
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
    print('  podnet, same + one container per pod          %7.1f ms/pod  (%.2f s)  ratio %.2f'
          % (per_pod(with_container['setup']), with_container['setup'], with_container['setup'] / reference))
    print('  re-check of %d unchanged pods                 %7.3f s  (goal < 0.2 s)' % (count, with_container['recheck']))
    print('  podnet teardown, one call                      %7.1f ms/pod  (goal: at most setup, %.1f ms/pod: %s)'
          % (per_pod(with_container['teardown']), per_pod(with_container['setup']),
             'met' if with_container['teardown'] <= with_container['setup'] else 'NOT met'))


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if os.environ.get(INNER):
        return inner(count)
    # A throwaway node: its namespaces, and every process in them, end with it.
    return subprocess.run(['unshare', '--net', '--mount', '--pid', '--fork', '--mount-proc',
                           '--propagation', 'private', sys.executable, __file__, str(count)],
                          env=dict(os.environ, **{INNER: '1'})).returncode


if __name__ == '__main__':
    sys.exit(main())
