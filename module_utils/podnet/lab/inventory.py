"""The lab's address plan: parsed from the inventory and validated, pure.

Nothing here touches the kernel, so every check runs before the first
change. Errors name the inventory field at fault: `podnet_lab.racks.rack1.subnet`
for lab-wide settings, `node2: podnet_underlay_ip` for a host's own.
"""
import ipaddress
import re
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import SpecError

LAB_NAME = re.compile(r'^[a-z][a-z0-9]{0,5}$')


@dataclass(frozen=True)
class Subnet:
    """An IPv4 subnet with the one address the lab side keeps on it."""
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    @property
    def gateway_cidr(self):
        return '%s/%d' % (self.gateway, self.network.prefixlen)


KINDS = ('netns', 'qemu')


@dataclass(frozen=True)
class NodeSpec:
    name: str
    rack: str
    mgmt_ip: ipaddress.IPv4Address  # a qemu node: 127.0.0.1, SSH on its forwarded port
    underlay_ip: ipaddress.IPv4Address
    kind: str = 'netns'
    ssh_port: int = 22


@dataclass(frozen=True)
class LabSpec:
    name: str
    mtu: int
    mgmt: Subnet
    racks: dict
    outside: Subnet
    outside_host: ipaddress.IPv4Address
    nodes: list = field(default_factory=list)


def _network(value, where):
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        raise SpecError(where, '%r is not an IPv4 subnet (%s)' % (value, exc)) from None


def _address(value, where, subnet=None):
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise SpecError(where, '%r is not an IPv4 address' % (value,)) from None
    if subnet is not None:
        if address not in subnet:
            raise SpecError(where, '%s is outside its subnet %s' % (address, subnet))
        if address in (subnet.network_address, subnet.broadcast_address):
            raise SpecError(where, '%s is the network or broadcast address of %s'
                            % (address, subnet))
    return address


def _subnet(raw, where, gateway_key):
    if not isinstance(raw, dict):
        raise SpecError(where, 'must be a mapping with subnet and %s' % gateway_key)
    network = _network(raw.get('subnet'), where + '.subnet')
    gateway = _address(raw.get(gateway_key), '%s.%s' % (where, gateway_key), network)
    return Subnet(network, gateway)


def _parse_lab(raw):
    where = 'podnet_lab'
    name = str(raw.get('name', ''))
    if not LAB_NAME.match(name):
        raise SpecError(where + '.name', '%r must be 1-6 lowercase letters or digits, '
                        'starting with a letter (it prefixes kernel names)' % name)
    mtu = raw.get('mtu', 1500)
    if not isinstance(mtu, int) or not 1280 <= mtu <= 9000:
        raise SpecError(where + '.mtu', '%r must be an integer from 1280 to 9000' % (mtu,))
    racks = raw.get('racks') or {}
    if not isinstance(racks, dict) or not racks:
        raise SpecError(where + '.racks', 'declare at least one rack')
    outside = raw.get('outside') or {}
    return LabSpec(
        name=name, mtu=mtu,
        mgmt=_subnet(raw.get('mgmt'), where + '.mgmt', 'host_ip'),
        racks={str(r): _subnet(v, '%s.racks.%s' % (where, r), 'gateway')
               for r, v in racks.items()},
        outside=_subnet(outside, where + '.outside', 'gateway'),
        outside_host=_address(outside.get('host_ip'), where + '.outside.host_ip',
                              _network(outside.get('subnet'), where + '.outside.subnet')))


def _parse_node(raw, lab):
    name = str(raw.get('name', ''))
    if not names.HOSTNAME.match(name):
        raise SpecError('%s: inventory name' % (name or repr(name)), names.NOT_A_HOSTNAME)
    rack = str(raw.get('rack') or next(iter(lab.racks)))
    if rack not in lab.racks:
        raise SpecError('%s: podnet_rack' % name, 'unknown rack %r (podnet_lab.racks has %s)'
                        % (rack, ', '.join(sorted(lab.racks))))
    kind = raw.get('kind') or 'netns'
    if kind not in KINDS:
        raise SpecError('%s: podnet_lab_kind' % name, '%r must be one of %s' % (kind, ', '.join(KINDS)))
    underlay = _address(raw.get('underlay_ip'), '%s: podnet_underlay_ip' % name, lab.racks[rack].network)
    if kind == 'netns':
        mgmt = _address(raw.get('mgmt_ip'), '%s: ansible_host' % name, lab.mgmt.network)
        return NodeSpec(name, rack, mgmt, underlay)
    return NodeSpec(name, rack, _loopback(raw.get('mgmt_ip'), name), underlay, kind,
                    _port(raw.get('ssh_port'), name))


def _loopback(value, name):
    """A VM is reached on a port qemu forwards on 127.0.0.1, and only there."""
    address = _address(value, '%s: ansible_host' % name)
    if str(address) != '127.0.0.1':
        raise SpecError('%s: ansible_host' % name, '%s: a qemu node is reached on 127.0.0.1 '
                        '(qemu forwards its SSH port there only)' % address)
    return address


def _port(value, name):
    if not isinstance(value, int) or not 1024 <= value <= 65535:
        raise SpecError('%s: ansible_port' % name, '%r must be a port from 1024 to 65535 '
                        '(qemu forwards it to the VM\'s SSH)' % (value,))
    return value


def _check_disjoint(lab_nets, reserved):
    """No two lab subnets overlap, and none overlaps a reserved network."""
    for i, (field_a, net_a) in enumerate(lab_nets):
        for field_b, net_b in lab_nets[i + 1:]:
            if net_a.overlaps(net_b):
                raise SpecError(field_b, '%s overlaps %s (%s)' % (net_b, field_a, net_a))
        for what, net in reserved:
            if net_a.overlaps(net):
                raise SpecError(field_a, '%s overlaps %s' % (net_a, what))


def _check_unique(named_addresses):
    seen = {}
    for where, address in named_addresses:
        if address in seen:
            raise SpecError(where, '%s is already used by %s' % (address, seen[address]))
        seen[address] = where


def lab_networks(lab):
    """Every subnet the lab occupies, keyed by the field that declares it."""
    nets = [('podnet_lab.mgmt.subnet', lab.mgmt.network)]
    nets += [('podnet_lab.racks.%s.subnet' % r, s.network) for r, s in lab.racks.items()]
    nets.append(('podnet_lab.outside.subnet', lab.outside.network))
    return nets


def parse(raw_lab, raw_nodes, reserved=()):
    """Validate the whole plan; return a LabSpec or raise SpecError.

    reserved: [(description, IPv4Network)] the lab must not overlap, such as
    the controller's own routes and the cluster CIDR; the description reads
    as the end of 'overlaps ...'.
    """
    if not isinstance(raw_lab, dict):
        raise SpecError('podnet_lab', 'must be a mapping (see inventories/lab)')
    lab = _parse_lab(raw_lab)
    if not raw_nodes:
        raise SpecError('nodes', 'the inventory group `nodes` has no hosts')
    _check_disjoint(lab_networks(lab), reserved)
    nodes = [_parse_node(n, lab) for n in raw_nodes]
    _check_unique([('%s: inventory name' % n.name, n.name) for n in nodes])
    _check_unique([('podnet_lab.mgmt.host_ip', lab.mgmt.gateway)]
                  + [('%s: ansible_host' % n.name, n.mgmt_ip) for n in nodes if n.kind == 'netns'])
    _check_unique([('%s: ansible_port' % n.name, n.ssh_port) for n in nodes if n.kind == 'qemu'])
    _check_unique([('podnet_lab.racks.%s.gateway' % r, s.gateway) for r, s in lab.racks.items()]
                  + [('%s: podnet_underlay_ip' % n.name, n.underlay_ip) for n in nodes])
    _check_unique([('podnet_lab.outside.gateway', lab.outside.gateway),
                   ('podnet_lab.outside.host_ip', lab.outside_host)])
    return LabSpec(**{**lab.__dict__, 'nodes': nodes})
