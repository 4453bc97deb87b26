"""Whether the planned pods fit, checked on the controller before any node
changes: each node's pod CIDR, and the memory of each machine.

Nodes on one kernel (the embedded lab's namespaces, told apart by nothing
but their name) share its memory: they are grouped by the kernel's boot id.
A new pod is budgeted POD_MEMORY, measured on an idle pod (pause, one
sleeping container, its sandbox and veth pair: 0.85 MiB each for 1,000
pods, bench/scale_bench.py) and rounded up; what a container's program
allocates on top is its own and cannot be known here.
"""
import ipaddress

from ansible.module_utils.podnet.errors import SpecError

POD_MEMORY = 1 << 20
MEMINFO = '/proc/meminfo'
BOOT_ID = '/proc/sys/kernel/random/boot_id'


def read_machine():
    """{kernel, memory_available} of the machine this runs on."""
    with open(MEMINFO) as f:
        fields = dict(line.split(':', 1) for line in f)
    with open(BOOT_ID) as f:
        kernel = f.read().strip()
    return {'kernel': kernel, 'memory_available': int(fields['MemAvailable'].split()[0]) * 1024}


def check_pod_cidrs(placement, cidrs):
    """A node's pods must fit its pod CIDR (less network, gateway, broadcast)."""
    for node, cidr in cidrs.items():
        count = sum(1 for n in placement.values() if n == node)
        room = ipaddress.IPv4Network(cidr).num_addresses - 3
        if count > room:
            raise SpecError('%s: pod CIDR' % node, '%s holds %d pods, %d are placed there'
                            % (cidr, room, count))


def check_memory(placement, nodes, running):
    """The pods about to start on each machine must fit the memory it has
    available now (pods already running are in that figure). nodes: [{name,
    kernel, memory_available}]; running: {pod key: node}."""
    machines = {}
    for node in nodes:
        if node.get('memory_available') is not None:
            machines.setdefault(node.get('kernel') or node['name'], []).append(node)
    for members in machines.values():
        names = [n['name'] for n in members]
        new = sum(1 for key, node in placement.items() if node in names and running.get(key) != node)
        available = min(n['memory_available'] for n in members)
        if new * POD_MEMORY > available:
            raise SpecError('%s: memory' % ', '.join(names), '%d new pods need about %d MiB (%d MiB '
                            'each), %s %d MiB available' % (
                                new, new * POD_MEMORY >> 20, POD_MEMORY >> 20,
                                'their machine has' if len(names) > 1 else 'it has', available >> 20))
