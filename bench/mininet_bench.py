"""Side by side with Mininet (issue "Scale"): Mininet 2.3, Debian's `mininet`
through its Python API, starts HOSTS hosts on SWITCHES LinuxBridge switches
(LinearTopo, no controller) and stops them. scale_bench.py holds podnet's
converge and removal of as many pods against these two figures, in the
same run.

What each side builds, so that the ratio is honest:
  Mininet, per host: a network namespace with a bash shell in it (mnexec)
    and a veth pair to its switch; per switch a Linux bridge, chained to the
    next by a veth pair. One L2 segment: no IP routing, no policy, no NAT,
    no state on disk, no remote execution.
  podnet, per pod: a sandbox network namespace held by a pause process, a
    container process in its own PID and mount namespaces, a veth on cni0,
    an address from the node's IPAM (on disk) and the pod's source guard;
    per node the pod bridge, masquerade, the policy table and vxlan to every
    other node; all of it driven by Ansible over SSH, and checked first.

Mininet runs in a network namespace of its own (pnbench-mininet) and a PID
namespace of its own: its bridges and links stay out of the root
namespace, and when the run ends, also when it fails, the kernel kills every
shell it started and deleting the namespace removes its links.

usage: python bench/mininet_bench.py [HOSTS] [SWITCHES]   (default 1000 20)
"""
import json
import subprocess
import sys

NAMESPACE = 'pnbench-mininet'
SYSTEM_PYTHON = '/usr/bin/python3'  # Debian's mininet is a module of the system Python

# Runs inside the namespaces; prints its figures as JSON.
RUN = r'''
import json, sys, time
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import LinearTopo

hosts, switches = int(sys.argv[1]), int(sys.argv[2])
setLogLevel('error')
start = time.perf_counter()
net = Mininet(topo=LinearTopo(k=switches, n=hosts // switches), switch=LinuxBridge,
              controller=None)
net.start()
started = time.perf_counter() - start
first, last = net.hosts[0], net.hosts[-1]
# The two ends of the chain reach each other. A first ping just after the
# start sometimes loses its ARP request (one run in three at 100 hosts), so
# one ping warms up and the next one counts.
net.ping([first, last], timeout='1')
loss = net.ping([first, last], timeout='1')
start = time.perf_counter()
net.stop()
print(json.dumps({'hosts': len(net.hosts), 'switches': len(net.switches), 'start': started,
                  'stop': time.perf_counter() - start, 'end_to_end_loss': loss}))
'''


def available():
    """None when Mininet can run here, else why not."""
    try:
        subprocess.run([SYSTEM_PYTHON, '-c', 'import mininet.net'], check=True, capture_output=True)
        subprocess.run(['mnexec', '-v'], check=True, capture_output=True)
        subprocess.run(['brctl', '--version'], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return 'Mininet is not installed: bin/bootstrap --bench-scale installs mininet and bridge-utils'
    return None


def run(hosts=1000, switches=20):
    """{'start': s, 'stop': s, 'hosts': n, 'switches': n, 'end_to_end_loss': %} of one run."""
    subprocess.run(['ip', 'netns', 'delete', NAMESPACE], capture_output=True)  # a killed run's
    subprocess.run(['ip', 'netns', 'add', NAMESPACE], check=True)
    try:
        done = subprocess.run(['ip', 'netns', 'exec', NAMESPACE, 'unshare', '--pid', '--fork',
                               '--kill-child', '--mount-proc', SYSTEM_PYTHON, '-c', RUN,
                               str(hosts), str(switches)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError('Mininet failed:\n%s' % (done.stderr or done.stdout)[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(['ip', 'netns', 'delete', NAMESPACE], check=False)


def main():
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    switches = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    why_not = available()
    if why_not:
        sys.exit(why_not)
    figures = run(hosts, switches)
    print('Mininet: %(hosts)d hosts on %(switches)d LinuxBridge switches: start %(start).1f s, '
          'stop %(stop).1f s (ping between the two ends, after a warm-up: %(end_to_end_loss).0f%% loss)' % figures)


if __name__ == '__main__':
    main()
