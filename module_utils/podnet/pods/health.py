"""What the kernel says of a recorded pod, as a CNI CHECK would: the pause
process in its sandbox, eth0's address, default route, MTU and veth peer,
the veth on cni0, the pod's cgroups; and which containers exited (the OOM
killer's among them). Its probes' verdicts (probes.py) join it. A Health is
read, never saved with the record."""
import ipaddress
import os
from dataclasses import dataclass, field

from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.pods.chain import wiring
from ansible.module_utils.podnet.pods.sandbox import Process, netns_inode, netns_path, read_inside


@dataclass
class Health:
    problems: list = field(default_factory=list)  # any: the sandbox is made again
    dead: list = field(default_factory=list)      # containers that exited
    oom: list = field(default_factory=list)       # of those, the ones the OOM killer ended
    mtu_now: int = None                           # the MTU the pod has (mtu_seen)
    pids_max: str = None                          # the pod cgroup's pids.max, as the file says it
    unready: list = field(default_factory=list)   # why it is not ready (probes.Prober.judge)
    unhealthy: dict = field(default_factory=dict)  # container -> why its liveness probe failed


def pod_cgroups(hierarchies, record):
    return cgroups.PodCgroups(hierarchies, record.get('cgroup') or '')


def mtu_seen(veth_mtu, eth0_mtu, want):
    """The MTU a pod has, for the plan: the first of its veth's ends that
    differs from want (both are set together), else want."""
    return veth_mtu if veth_mtu != want else eth0_mtu


class Checker:
    """ipam: the node's HostLocalIpam (its network and gateway); mtu: the
    pods' MTU; hierarchies: the cgroup hierarchies ({}: none)."""

    def __init__(self, ipam, mtu, hierarchies, chain=None):
        self.ipam, self.mtu, self.hierarchies, self.chain = ipam, mtu, hierarchies, chain

    def check(self, record, links, bridge):
        """The record's Health; links: the node's links by name, bridge: cni0's index."""
        veth = links.get(record['veth'])
        dead = sorted(c for c, p in record['containers'].items() if not Process.from_dict(p).alive())
        own = pod_cgroups(self.hierarchies, record)
        health = Health(self._sandbox_problems(record, veth, bridge), dead,
                        [c for c in dead if own.oom_kills(c)], veth.get('IFLA_MTU') if veth else None,
                        own.read('pids', 'pids.max'))
        if record.get('cni') or self.chain:
            return self._chain_check(record, health)
        if not health.problems:
            inside = read_inside(record['netns'])
            health.problems = self._inside_problems(record, inside, veth)
            if inside:
                health.mtu_now = mtu_seen(health.mtu_now, inside['mtu'], self.mtu)
        return health

    def _chain_check(self, record, health):
        """A pod a CNI chain wired (or is to wire): the sandbox as for any
        pod, then the chain's CHECK of it. The chain set its MTU: the
        conflist holds it, and a changed list makes the pod again."""
        health.mtu_now = self.mtu
        if not health.problems:
            health.problems = (self.chain.problems(record) if self.chain
                               else ['wired by %s, want native' % wiring(record)])
        return health

    def _sandbox_problems(self, record, veth, bridge):
        found = self._process_problems(record)
        if found:
            return found
        if not record.get('cni') and (veth is None or bridge is None or veth.get('IFLA_MASTER') != bridge):
            return ['%s not on %s' % (record['veth'], BRIDGE)]
        if ipaddress.IPv4Address(record['ip']) not in self.ipam.network:
            return ['address %s is outside the pod CIDR %s' % (record['ip'], self.ipam.network)]
        if self.hierarchies and not pod_cgroups(self.hierarchies, record).exists():
            return ['its cgroup %s is gone' % record['cgroup'] if record.get('cgroup')
                    else 'no cgroup of its own (an older podnet made it)']
        return []

    @staticmethod
    def _process_problems(record):
        pause = Process.from_dict(record['pause'])
        if not pause.alive():
            return ['pause process gone']
        if not os.path.exists(netns_path(record['netns'])):
            return ['sandbox %s gone' % record['netns']]
        if netns_inode(pause.pid) != os.stat(netns_path(record['netns'])).st_ino:
            return ['pause process is not in sandbox %s' % record['netns']]
        return []

    def _inside_problems(self, record, inside, veth):
        """The CNI CHECK of eth0 inside the sandbox."""
        if inside is None:
            return ['eth0 gone from %s' % record['netns']]
        want = '%s/%d' % (record['ip'], self.ipam.network.prefixlen)
        found = []
        if inside['addresses'] != [want]:
            found.append('eth0 has %s, want %s' % (', '.join(inside['addresses']) or 'no address', want))
        if inside['gateways'] != [str(self.ipam.gateway)]:
            found.append('default route via %s, want via %s' % (
                ', '.join(inside['gateways']) or 'nothing', self.ipam.gateway))
        if not inside['up']:
            found.append('eth0 is down')
        if inside['peer'] != veth['index'] or inside['mac'] != record['mac']:
            found.append('eth0 is not the %s peer with MAC %s' % (record['veth'], record['mac']))
        return found
