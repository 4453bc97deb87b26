"""Wiring of the lab's networks: which address sits where, and the netlink
calls that put it there.

Topology (names from podnet.names):
  root namespace:  pn<lab>-mgmt bridge (controller address) with one
                   isolated port pn<lab>-<node> per node: SSH only, nodes
                   cannot reach each other over it.
  fabric host:     br-<rack> per rack holding the rack gateway; forwarding
                   on, so the fabric is also the router between racks and to
                   the outside host; outside0 towards the outside host.
  node:            mgmt0 (management), eth0 (underlay, default route via
                   its rack gateway).
  outside host:    eth0 in 203.0.113.0/24, default route via the fabric.
"""
from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.kernel.netlink import (
    add_veth,
    addresses_by_link,
    delete_link,
    ensure_address,
    ensure_bridge,
    link_index,
    links_by_name,
    rtnl,
    set_up,
)

FABRIC = 'fabric'
OUTSIDE = 'outside'


def _cidr(address, subnet):
    return '%s/%d' % (address, subnet.network.prefixlen)


def wanted_addresses(spec, host):
    """{ifname: cidr} a healthy host has in its own namespace."""
    if host == FABRIC:
        return {names.rack_bridge(r): s.gateway_cidr for r, s in spec.racks.items()}
    if host == OUTSIDE:
        return {names.NODE_UNDERLAY_IFNAME: _cidr(spec.outside_host, spec.outside)}
    node = next(n for n in spec.nodes if n.name == host)
    return {names.NODE_MGMT_IFNAME: _cidr(node.mgmt_ip, spec.mgmt),
            names.NODE_UNDERLAY_IFNAME: _cidr(node.underlay_ip, spec.racks[node.rack])}


def missing_addresses(netns, wanted):
    """The part of {ifname: cidr} absent from netns, as readable strings."""
    with rtnl(netns) as ipr:
        links = links_by_name(ipr)
        addrs = addresses_by_link(ipr)
    missing = []
    for ifname, cidr in sorted(wanted.items()):
        link = links.get(ifname)
        if link is None:
            missing.append('no link %s' % ifname)
        elif cidr not in addrs.get(link['index'], ()):
            missing.append('%s lacks %s' % (ifname, cidr))
    return missing


def _lo_up(ipr):
    set_up(ipr, link_index(ipr, 'lo'))


def ensure_mgmt_bridge(spec):
    with rtnl() as ipr:
        index = ensure_bridge(ipr, names.mgmt_bridge(spec.name), 1500)
        ensure_address(ipr, index, spec.mgmt.gateway_cidr)
        set_up(ipr, index)


def plumb_fabric(spec, fabric):
    with rtnl(fabric.netns) as ipr:
        _lo_up(ipr)
        for rack, subnet in spec.racks.items():
            index = ensure_bridge(ipr, names.rack_bridge(rack), spec.mtu)
            ensure_address(ipr, index, subnet.gateway_cidr)
            set_up(ipr, index)


def plumb_outside(spec, fabric, outside):
    with rtnl(fabric.netns) as ipr:
        index = add_veth(ipr, names.FABRIC_OUTSIDE_IFNAME, names.NODE_UNDERLAY_IFNAME,
                         outside.pid, spec.mtu, names.stable_mac(spec.name, OUTSIDE))
        ensure_address(ipr, index, spec.outside.gateway_cidr)
        set_up(ipr, index)
    _configure_host_side(outside.netns, names.NODE_UNDERLAY_IFNAME,
                         _cidr(spec.outside_host, spec.outside), spec.outside.gateway)


def plumb_node(spec, node, host, fabric):
    """Management veth from the root bridge, underlay veth from the rack switch."""
    with rtnl() as ipr:
        index = add_veth(ipr, names.mgmt_port(spec.name, node.name), names.NODE_MGMT_IFNAME,
                         host.pid, 1500, names.stable_mac(spec.name, node.name, 'mgmt'))
        set_up(ipr, index, master=link_index(ipr, names.mgmt_bridge(spec.name)))
        ipr.brport('set', index=index, isolated=1)
        ipr.link('set', index=index, ifalias='podnet lab %s: mgmt of %s' % (spec.name, node.name))
    with rtnl(fabric.netns) as ipr:
        index = add_veth(ipr, names.fabric_port(node.name), names.NODE_UNDERLAY_IFNAME,
                         host.pid, spec.mtu, names.stable_mac(spec.name, node.name, 'underlay'))
        set_up(ipr, index, master=link_index(ipr, names.rack_bridge(node.rack)))
    rack = spec.racks[node.rack]
    with rtnl(host.netns) as ipr:
        _lo_up(ipr)
        mgmt = link_index(ipr, names.NODE_MGMT_IFNAME)
        ensure_address(ipr, mgmt, _cidr(node.mgmt_ip, spec.mgmt))
        set_up(ipr, mgmt)
    _configure_host_side(host.netns, names.NODE_UNDERLAY_IFNAME,
                         _cidr(node.underlay_ip, rack), rack.gateway)


def _configure_host_side(netns, ifname, cidr, gateway):
    with rtnl(netns) as ipr:
        _lo_up(ipr)
        index = link_index(ipr, ifname)
        ensure_address(ipr, index, cidr)
        set_up(ipr, index)
        ipr.route('replace', dst='0.0.0.0/0', gateway=str(gateway), oif=index)


def root_ports(spec):
    """Names of this lab's links in the root namespace that exist now."""
    prefix = names.root_prefix(spec.name)
    with rtnl() as ipr:
        return sorted(n for n in links_by_name(ipr) if n.startswith(prefix))


def delete_root_links(link_names):
    with rtnl() as ipr:
        for name in link_names:
            delete_link(ipr, name)
