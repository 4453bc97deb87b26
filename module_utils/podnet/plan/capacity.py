"""Whether the planned pods fit, checked on the controller before any node
changes: each node's pod CIDR, and the memory and neighbour table of each
machine.

Nodes on one kernel (the embedded lab's namespaces, told apart by nothing
but their name) share its memory: they are grouped by the kernel's boot id.
A new pod is budgeted POD_MEMORY, measured on an idle pod (pause, one
sleeping container, its sandbox and veth pair: 0.85 MiB each for 1,000
pods, bench/scale_bench.py) and rounded up; what a container's program
allocates on top is its own and cannot be known here.
"""
import ipaddress
import os

from ansible.module_utils.podnet.core.errors import SpecError

POD_MEMORY = 1 << 20
MEMINFO = '/proc/meminfo'
BOOT_ID = '/proc/sys/kernel/random/boot_id'
# The kernel's ARP table is one for all network namespaces; past gc_thresh3
# entries it creates no more ("neighbor table overflow") and packets to an
# address it cannot resolve are dropped. A pod holds two entries (its
# gateway in its sandbox, itself on cni0), more while it talks to pods of
# its node; a node a few (fabric, mgmt). Half the table is left for that.
NEIGH_MAX = '/proc/sys/net/ipv4/neigh/default/gc_thresh3'
NEIGH_PER_POD, NEIGH_PER_NODE, NEIGH_HEADROOM = 2, 4, 2


def read_machine():
    """{kernel, memory_available, neighbours_max, pid_namespace} of the
    machine (and PID namespace: a lab node's own) this runs on."""
    with open(MEMINFO) as f:
        fields = dict(line.split(':', 1) for line in f)
    with open(BOOT_ID) as f:
        kernel = f.read().strip()
    try:
        with open(NEIGH_MAX) as f:
            neighbours = int(f.read())
    except (OSError, ValueError):
        neighbours = None  # not shown in this namespace: not checked
    return {'kernel': kernel, 'memory_available': int(fields['MemAvailable'].split()[0]) * 1024,
            'neighbours_max': neighbours, 'pid_namespace': os.readlink('/proc/self/ns/pid')}


def check_pod_cidrs(placement, cidrs):
    """A node's pods must fit its pod CIDR (less network, gateway, broadcast)."""
    for node, cidr in cidrs.items():
        count = sum(1 for n in placement.values() if n == node)
        room = ipaddress.IPv4Network(cidr).num_addresses - 3
        if count > room:
            raise SpecError('%s: pod CIDR' % node, '%s holds %d pods, %d are placed there'
                            % (cidr, room, count))


def with_this_machine(nodes, machine):
    """nodes, those on the kernel this runs on (the controller, for the
    embedded lab) given what a node's namespace cannot show of it: the
    neighbour table's size is only shown in the machine's first namespace,
    and the other labs' pods and hosts (host.lab_processes()) only from there."""
    seen = {k: machine[k] for k in ('kernel_pods', 'kernel_lab_hosts', 'kernel_pods_by_node')
            if k in machine}
    return [dict(n, neighbours_max=n.get('neighbours_max') or machine['neighbours_max'], **seen)
            if n.get('kernel') == machine['kernel'] else n for n in nodes]


def machines(nodes, fact):
    """The nodes that report fact, grouped by the kernel they run on."""
    found = {}
    for node in nodes:
        if node.get(fact) is not None:
            found.setdefault(node.get('kernel') or node['name'], []).append(node)
    return found.values()


def check_neighbours(placement, nodes):
    """All the pods of one kernel's nodes must fit its neighbour table,
    which every network namespace on it shares (the embedded lab's nodes)."""
    for members in machines(nodes, 'neighbours_max'):
        names = [n['name'] for n in members]
        pods = sum(1 for node in placement.values() if node in names)
        other_pods, other_hosts = others_on_kernel(members)
        need = NEIGH_PER_POD * (pods + other_pods) + NEIGH_PER_NODE * (len(names) + other_hosts)
        limit = min(n['neighbours_max'] for n in members)
        if need * NEIGH_HEADROOM > limit:
            others = ' (and %d other pods and %d other lab hosts there)' % (other_pods, other_hosts) \
                if other_pods or other_hosts else ''
            raise SpecError('%s: neighbour table' % ', '.join(names), (
                '%d pods and %d nodes on one kernel%s need about %d ARP entries, twice that room, and '
                'its table holds %d (net.ipv4.neigh.default.gc_thresh3, shared by every namespace): '
                'raise it on that machine (sysctl -w net.ipv4.neigh.default.gc_thresh2=%d '
                'net.ipv4.neigh.default.gc_thresh3=%d; bin/bootstrap --bench-scale does) or run '
                'fewer pods') % (pods, len(names), others, need, limit, need * NEIGH_HEADROOM,
                                 2 * need * NEIGH_HEADROOM))


def others_on_kernel(members):
    """(pods, hosts) on the members' kernel that are not theirs (other labs',
    and their own lab's fabric and outside host): what the controller saw
    there, less the pods running under the members and the members
    themselves. The pods are counted from the process table, not from the
    nodes' records: a run that was killed, or one running beside this one,
    leaves pods no record names yet, and they are this cluster's own (the
    run adopts or removes them), not another lab's."""
    seen = members[0]  # with_this_machine() gives every node on the kernel the same figures
    if 'kernel_pods' not in seen:
        return 0, 0
    by_node = seen.get('kernel_pods_by_node') or {}
    running = sum(by_node.get(n.get('pid_namespace'), 0) for n in members)
    return max(0, seen['kernel_pods'] - running), max(0, seen['kernel_lab_hosts'] - len(members))


def check_memory(placement, nodes, running):
    """The pods about to start on each machine must fit the memory it has
    available now (pods already running are in that figure). nodes: [{name,
    kernel, memory_available}]; running: {pod key: node}."""
    for members in machines(nodes, 'memory_available'):
        names = [n['name'] for n in members]
        new = sum(1 for key, node in placement.items() if node in names and running.get(key) != node)
        available = min(n['memory_available'] for n in members)
        if new * POD_MEMORY > available:
            raise SpecError('%s: memory' % ', '.join(names), '%d new pods need about %d MiB (%d MiB '
                            'each), %s %d MiB available' % (
                                new, new * POD_MEMORY >> 20, POD_MEMORY >> 20,
                                'their machine has' if len(names) > 1 else 'it has', available >> 20))
