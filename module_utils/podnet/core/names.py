"""Kernel names of lab objects: the one place that derives them.

Everything the lab provider creates in the root namespace carries the
prefix `pn<lab>-` so that teardown and residue scans find exactly podnet's
objects. Linux limits interface names to 15 bytes: a readable name is used
when it fits, else a stable hash of it.
"""
import hashlib
import re

IFNAMSIZ = 15
# A node's inventory name: a DNS label (RFC 1123), as a hostname and a
# Kubernetes node name must be. Lab and VM providers, and every playbook
# that changes nodes, check it before anything changes: the name goes into
# paths, the nodes' hostnames and the VTEP MACs derived from it.
HOSTNAME = re.compile(r'^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
NOT_A_HOSTNAME = 'not a DNS label (a-z, 0-9 and -, at most 63, as a hostname)'


def fit_ifname(prefix, name):
    """`prefix + name` if it fits in IFNAMSIZ, else prefix + 6 hex of a hash."""
    if len((prefix + name).encode()) <= IFNAMSIZ:
        return prefix + name
    return prefix + hashlib.sha256(name.encode()).hexdigest()[:6]


def fnv1a(data):
    """FNV-1a, 32 bits, of bytes: a stable hash (Python's own is salted per
    process), the one Kubernetes' controllers use for names."""
    digest = 2166136261
    for byte in data:
        digest = ((digest ^ byte) * 16777619) & 0xFFFFFFFF
    return digest


def stable_mac(*parts):
    """A locally administered unicast MAC derived from parts: a recreated
    host keeps its MACs, so its neighbours' ARP caches stay right, as with
    a rebooted VM whose NIC keeps its address."""
    digest = hashlib.sha256('/'.join(parts).encode()).digest()
    return ':'.join('%02x' % b for b in (0x02,) + tuple(digest[:5]))


def root_prefix(lab):
    return 'pn%s-' % lab


def mgmt_bridge(lab):
    """The management bridge in the root namespace, e.g. `pnlab-mgmt`."""
    return root_prefix(lab) + 'mgmt'


def mgmt_port(lab, host):
    """Root-namespace end of a host's management veth, e.g. `pnlab-node1`."""
    return fit_ifname(root_prefix(lab), host)


def fabric_port(host):
    """Fabric-namespace end of a node's underlay veth, e.g. `p-node1`."""
    return fit_ifname('p-', host)


def rack_bridge(rack):
    """The switch of one rack inside the fabric namespace, e.g. `br-rack1`."""
    return fit_ifname('br-', rack)


NODE_MGMT_IFNAME = 'mgmt0'
NODE_UNDERLAY_IFNAME = 'eth0'
FABRIC_OUTSIDE_IFNAME = 'outside0'
