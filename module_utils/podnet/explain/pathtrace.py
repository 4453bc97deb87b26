"""One packet's path through a node, read live from the kernel: what
`ip route get`, `ip neigh` and `bridge fdb` say at each hop, as the seed
article walks it (eth0 -> veth -> cni0 -> route -> flannel.1 or the
underlay -> ... -> cni0 -> veth -> eth0).

Each hop is a dict {at, says, problem}: `at` the interface or table (`x/a
eth0`, `cni0`, `flannel.1`), `says` what the kernel holds there, `problem`
None or why the packet cannot go on from there. What the kernel fills in on
the first packet (an ARP entry, a learned bridge port) is not a problem.
"""
import collections
import ipaddress
import json
import os
import socket

from ansible.module_utils.podnet.explain import outsidepath, servicepath
from ansible.module_utils.podnet.kernel import nfteval
from ansible.module_utils.podnet.kernel.netlink import NetlinkError, links_by_name, rtnl, underlay_facts
from ansible.module_utils.podnet.node import backend
from ansible.module_utils.podnet.node.network import BRIDGE, NAT, table_name
from ansible.module_utils.podnet.pods.sandbox import netns_path

# One new connection, as the explainer follows it.
Flow = collections.namedtuple('Flow', 'src dst port protocol')
AF_BRIDGE = 7
NUD_NAMES = {0x01: 'INCOMPLETE', 0x02: 'REACHABLE', 0x04: 'STALE', 0x08: 'DELAY', 0x10: 'PROBE',
             0x20: 'FAILED', 0x40: 'NOARP', 0x80: 'PERMANENT'}
NUD_FAILED = 0x20
IFA_F_SECONDARY = 0x01
RT_SCOPE_UNIVERSE = 0


def hop(at, says, problem=None):
    return {'at': at, 'says': says, 'problem': problem}


class Netns:
    """Names and lookups in one network namespace, on an open IPRoute."""

    def __init__(self, ipr):
        self.ipr = ipr
        self.links = links_by_name(ipr)
        self.names = {link['index']: name for name, link in self.links.items()}

    def route_get(self, dst, src=None, iif=None):
        """(route dict, None) or (None, why) for `ip route get dst [from src iif iif]`."""
        query = {'dst': dst}
        if iif is not None:
            if iif not in self.links:
                return None, '%s is missing' % iif
            query.update(src=src, iif=self.links[iif]['index'])
        try:
            msg = self.ipr.route('get', **query)[0]
        except NetlinkError as exc:
            return None, os.strerror(exc.code) if exc.code else str(exc)
        return {'dev': self.names.get(msg.get('RTA_OIF')), 'via': msg.get('RTA_GATEWAY'),
                'src': msg.get('RTA_PREFSRC'), 'type': msg['type']}, None

    def neighbour(self, dev, address):
        """(MAC or None, state name) of address on dev."""
        if dev not in self.links:
            return None, None
        for entry in self.ipr.get_neighbours(family=socket.AF_INET, ifindex=self.links[dev]['index'],
                                             dst=address):
            if entry.get('NDA_DST') == address:
                state = entry['state']
                return entry.get('NDA_LLADDR'), '|'.join(
                    n for bit, n in NUD_NAMES.items() if state & bit) or 'NONE'
        return None, None

    def bridge_port(self, bridge, mac):
        """The port of bridge whose FDB holds mac, or None."""
        master = self.links[bridge]['index']
        for entry in self.ipr.get_neighbours(family=AF_BRIDGE):
            if entry.get('NDA_LLADDR') == mac and entry.get('NDA_MASTER') == master:
                return self.names.get(entry['ifindex'])
        return None

    def vxlan_destination(self, vtep, mac):
        """The underlay address flannel.1's FDB sends mac to, or None."""
        for entry in self.ipr.fdb('dump', ifindex=self.links[vtep]['index']):
            if entry.get('NDA_LLADDR') == mac and entry.get('NDA_DST'):
                return entry.get('NDA_DST')
        return None

    def masquerade_source(self, dev, next_hop):
        """The address masquerade gives a packet leaving by dev for
        next_hop, as the kernel picks it (inet_select_addr): the first
        primary global address of dev whose subnet holds next_hop, else its
        first; None when dev has none."""
        if dev not in self.links:
            return None
        found = [ipaddress.IPv4Interface('%s/%d' % (a.get('IFA_LOCAL') or a.get('IFA_ADDRESS'), a['prefixlen']))
                 for a in self.ipr.get_addr(family=socket.AF_INET, index=self.links[dev]['index'])
                 if not a['flags'] & IFA_F_SECONDARY and a['scope'] == RT_SCOPE_UNIVERSE]
        near = [a for a in found if ipaddress.IPv4Address(next_hop) in a.network]
        return str((near or found)[0].ip) if found else None

    def link_says(self, name):
        """`name: UP mtu 1450` with its master, or why it cannot carry."""
        link = self.links.get(name)
        if link is None:
            return '%s: no such link' % name, '%s is missing' % name
        state = link.get('IFLA_OPERSTATE')
        up = bool(link['flags'] & 1) and state != 'DOWN'
        master = self.names.get(link.get('IFLA_MASTER'))
        says = '%s %s mtu %s%s' % (name, state, link.get('IFLA_MTU'),
                                   ' master %s' % master if master else '')
        return says, None if up else '%s is down' % name


def source_pod_hops(pod, dst):
    """Inside the source pod: its route to dst, the next hop's neighbour
    entry, and eth0 (the veth's pod end)."""
    at = '%s eth0' % pod['key']
    with rtnl(netns_path(pod['netns'])) as ipr:
        ns = Netns(ipr)
        says, down = ns.link_says('eth0')
        route, why = ns.route_get(dst)
        if route is None:
            return [hop(at, 'ip route get %s' % dst, 'no route in the pod: %s' % why)]
        next_hop = route['via'] or dst
        mac, state = ns.neighbour(route['dev'], next_hop)
    hops = [hop(at, 'ip route get %s: %s%s dev %s src %s' % (
        dst, dst, ' via %s' % route['via'] if route['via'] else '', route['dev'], route['src']),
        None if route['dev'] == 'eth0' else 'the pod routes %s out of %s, not eth0' % (dst, route['dev'])),
        hop(at, says, down),
        hop(at, _neighbour_says(next_hop, mac, state), _failed(next_hop, state))]
    return hops


def loopback_hops(pod, address):
    """A pod to its own address: its containers share one network
    namespace, so the kernel delivers it on lo (the seed's first picture)."""
    at = '%s lo' % pod['key']
    with rtnl(netns_path(pod['netns'])) as ipr:
        ns = Netns(ipr)
        route, why = ns.route_get(address)
        says, down = ns.link_says('lo')
    if route is None:
        return [hop(at, 'ip route get %s' % address, 'no route in the pod: %s' % why)]
    return [hop(at, 'ip route get %s: local %s dev %s (table local)' % (address, address, route['dev']),
                None if route['dev'] == 'lo' else 'the pod sends its own address out of %s' % route['dev']),
            hop(at, says + ': every container of the pod shares it', down)]


def node_hops(node, flow, iif, dst_pod=None, dnat=()):
    """On a node: the packet arriving on iif (a pod's veth, flannel.1 or the
    underlay NIC), the DNAT hops of a Service (the packet goes on to
    flow.dst, the endpoint, unless they stop it), its route lookup, then
    cni0 and the destination pod's veth when the endpoint or pod is local,
    or the tunnel or next hop when it is not. (hops, the route taken with
    the address masquerade would give the packet, or None where it stops)."""
    src, dst = flow.src, flow.dst
    with rtnl() as ipr:
        ns = Netns(ipr)
        says, down = ns.link_says(iif)
        hops = [hop('%s %s' % (node, iif), says, down)] + list(dnat)
        if any(h['problem'] for h in dnat):
            return hops, None
        route, why = ns.route_get(dst, src, iif)
        lookup = 'route lookup %s from %s iif %s' % (dst, src, iif)
        if route is None:
            return hops + [hop('%s route' % node, lookup, 'no route: %s' % why)], None
        hops.append(hop('%s route' % node, '%s: %s dev %s' % (
            lookup, 'via %s' % route['via'] if route['via'] else 'direct', route['dev'])))
        hops += _onwards(ns, node, route, dst, dst_pod)
        route['masquerade'] = ns.masquerade_source(route['dev'], route['via'] or dst)
    return hops, route


def trace_node(run, flow, source_pod=None, iif=None, destination_pod=None, service=None, external=None):
    """{hops, leaves_by, rejected, masquerades_to} of this node: from inside source_pod when
    it runs here (else arriving on iif; `underlay`: the underlay NIC), to
    destination_pod's eth0 when it runs here. service (the source's node
    only): the pod sends to its ClusterIP and port, this node DNATs it to
    flow.dst (servicepath.py); rejected when the node rejects it there.
    external: the outside host dials this node's NodePort or LoadBalancer
    port, this node DNATs it (outsidepath.py), and masquerades it or not:
    masquerades_to is the address it gives the packet (None: not)."""
    hops = []
    if source_pod and flow.src == flow.dst and not service:
        return {'hops': loopback_hops(source_pod, flow.dst), 'leaves_by': 'lo', 'rejected': False,
                'masquerades_to': None}
    if source_pod:
        hops += source_pod_hops(source_pod, service['ip'] if service else flow.dst)
        iif = source_pod['veth']
    elif iif == 'underlay':
        iif = underlay_facts()['underlay_ifname']
    node = socket.gethostname()
    ruleset, unread = read_ruleset(run)
    dnat, rejected, marked = _dnat(ruleset, flow, service, external)
    node_part, route = node_hops(node, flow, iif, destination_pod, dnat)
    hops += node_part
    if any(h['problem'] for h in dnat):
        return {'hops': hops, 'leaves_by': None, 'rejected': rejected, 'masquerades_to': None}
    leaves_by = route['dev'] if route else None
    packet = dict(flow._asdict(), protocol=flow.protocol.lower(), dport=flow.port, iif=iif,
                  oif=leaves_by)
    hops += nftables_hops(ruleset, unread, node, packet, sent_here=bool(source_pod))
    masquerades_to = route['masquerade'] if marked and route else None
    if marked is not None:
        hops.append(outsidepath.masquerade_hop(marked, flow.src, masquerades_to, leaves_by))
    if destination_pod and leaves_by == BRIDGE:
        hops += destination_pod_hops(destination_pod)
    return {'hops': hops, 'leaves_by': leaves_by, 'rejected': False, 'masquerades_to': masquerades_to}


def _dnat(ruleset, flow, service, external):
    """(DNAT hops, rejected, marked for masquerade: None when no external
    port is dialled) of a Service target: a pod's ClusterIP, or the outside
    host's external port."""
    if service:
        return servicepath.dnat_hops(ruleset, service, flow.src, flow.protocol) + (None,)
    if external:
        return outsidepath.dnat_hops(ruleset, external, flow.src)
    return [], False, None


def read_ruleset(run):
    """(ruleset, None) of `nft -j list ruleset`, or (None, why not)."""
    rc, out, err = run(['nft', '-j', 'list', 'ruleset'])
    if rc != 0:
        return None, 'nft list ruleset failed: %s' % err.strip()
    return json.loads(out), None


def nftables_hops(ruleset, unread, node, packet, sent_here):
    """The filter chains judged for the new connection and, where a pod
    sends it, the nat decision: both from one read of the ruleset."""
    if ruleset is None:
        return [hop('%s nftables' % node, unread)]
    return [filter_hop(ruleset, node, packet)] + ([nat_hop(ruleset, packet)] if sent_here else [])


def filter_hop(ruleset, node, packet):
    """The node's filter chains judged for the new connection (packet, as
    nfteval takes it)."""
    dropped_by, not_judged = nfteval.judge(ruleset, packet)
    says = 'filter chains: %s' % ('%s drops it' % dropped_by if dropped_by else 'none drops it')
    if not_judged:
        says += ' (not judged: %s)' % '; '.join(not_judged)
    return hop('%s nftables' % node, says, 'dropped by %s' % dropped_by if dropped_by else None)


def probe(source_pod, flow, timeout, target=None):
    """One real probe from source_pod to target (ip, port; default the
    flow's destination), then, from the node's conntrack entry of it: the
    source address the destination saw (the pod's own address, or the
    node's when masqueraded) and, when the node DNATed it (a ClusterIP),
    the endpoint the kernel chose."""
    from ansible.module_utils.podnet.explain import prober
    ip, port = target or (flow.dst, flow.port)
    attempt, = prober.plan([source_pod], [{'key': ip, 'ip': ip}], [port], [flow.protocol])
    result, = prober.run([attempt], timeout, 1)
    delivered = result['allowed'] is True or result['reason'] == prober.REFUSED  # reached, nothing listened
    reply = conntrack_reply(flow.src, ip, port, flow.protocol) if delivered or target else None
    found = {'outcome': result['reason'], 'delivered': delivered,
             'seen_source': reply.daddr if reply and delivered else None}
    if target:
        dnatted = reply and (reply.saddr, reply.sport) != (ip, port)
        found['endpoint'] = '%s:%s' % (reply.saddr, reply.sport) if dnatted else None
    return found


def seen_source(src, dst, port, protocol):
    """From this node's conntrack table, over netlink: the reply tuple's
    destination of the src -> dst:port connection, or None."""
    reply = conntrack_reply(src, dst, port, protocol)
    return reply.daddr if reply else None


def conntrack_reply(src, dst, port, protocol):
    """The reply tuple of the newest src -> dst:port entry in this node's
    conntrack table, read over netlink, or None: its source is who
    answered (the endpoint a DNAT chose), its destination the source the
    answer went to."""
    from pyroute2 import Conntrack
    from pyroute2.conntrack import NFCTAttrTuple
    wanted = NFCTAttrTuple(saddr=src, daddr=dst, proto=nfteval.PROTOCOL_NUMBERS[protocol.lower()], dport=port)
    try:
        with Conntrack() as table:
            return newest_reply(table.dump_entries(tuple_orig=wanted))
    except (OSError, NetlinkError):
        return None


def newest_reply(entries):
    """The reply tuple of the entry refreshed last (the most time left:
    probes to one destination differ in their source port only)."""
    newest = max(entries, key=lambda entry: entry.timeout or 0, default=None)
    return newest.tuple_reply if newest else None


def _onwards(ns, node, route, dst, dst_pod):
    dev = route['dev']
    if dev == BRIDGE:
        return _to_local_pod(ns, node, dst, dst_pod)
    if dev == backend.VTEP:
        return _into_vxlan(ns, node, route['via'])
    says, down = ns.link_says(dev)
    next_hop = route['via'] or dst
    mac, state = ns.neighbour(dev, next_hop)
    return [hop('%s %s' % (node, dev), says, down),
            hop('%s %s' % (node, dev), _neighbour_says(next_hop, mac, state), _failed(next_hop, state))]


def _to_local_pod(ns, node, dst, dst_pod):
    at = '%s %s' % (node, BRIDGE)
    says, down = ns.link_says(BRIDGE)
    mac, state = ns.neighbour(BRIDGE, dst)
    hops = [hop(at, says, down), hop(at, _neighbour_says(dst, mac, state), _failed(dst, state))]
    if dst_pod is None:
        return hops + [hop(at, '%s is no pod of this node' % dst, 'cni0 holds no pod with %s' % dst)]
    port = ns.bridge_port(BRIDGE, dst_pod['mac'])
    hops.append(hop(at, 'bridge fdb: %s => %s' % (dst_pod['mac'], port) if port else
                    'bridge fdb: %s not learned yet (cni0 floods until it is)' % dst_pod['mac'],
                    None if port in (None, dst_pod['veth']) else
                    '%s is learned on %s, but %s has it on %s' % (dst_pod['mac'], port, dst_pod['key'],
                                                                  dst_pod['veth'])))
    says, down = ns.link_says(dst_pod['veth'])
    veth = ns.links.get(dst_pod['veth']) or {}
    return hops + [hop('%s %s' % (node, dst_pod['veth']), says, down or (
        None if veth.get('IFLA_MASTER') == ns.links[BRIDGE]['index']
        else '%s is not on cni0' % dst_pod['veth']))]


def _into_vxlan(ns, node, gateway):
    at = '%s %s' % (node, backend.VTEP)
    says, down = ns.link_says(backend.VTEP)
    mac, state = ns.neighbour(backend.VTEP, gateway)
    hops = [hop(at, says, down), hop(at, _neighbour_says(gateway, mac, state),
                                     None if mac else 'no neighbour entry for the VTEP %s' % gateway)]
    if not mac:
        return hops
    remote = ns.vxlan_destination(backend.VTEP, mac)
    hops.append(hop(at, 'fdb %s dst %s (encapsulate to it, UDP %d)' % (mac, remote, backend.VXLAN_PORT)
                    if remote else 'fdb has no entry for %s' % mac,
                    None if remote else 'flannel.1 has no FDB entry for %s: no underlay destination' % mac))
    if remote:
        route, why = ns.route_get(remote)
        hops.append(hop('%s underlay' % node, 'ip route get %s: %s dev %s' % (
            remote, 'via %s' % route['via'] if route and route['via'] else 'direct',
            route and route['dev']) if route else 'ip route get %s' % remote,
            None if route else 'no underlay route: %s' % why))
    return hops


def nat_hop(ruleset, packet):
    """The live nat table's decision for the new connection: masquerade or
    not, and the rule that decides."""
    name, flow = table_name(NAT), '%(src)s -> %(dst)s' % packet
    if not nfteval.has_table(ruleset, *NAT):
        return hop(name, 'missing: nothing is masqueraded')
    by, not_judged = nfteval.masqueraded_by(ruleset, *NAT, packet)
    unsure = ' (not judged before it: %s)' % '; '.join(not_judged) if not_judged else ''
    if by:
        return hop(name, "%s masquerades %s: the destination sees the node's address%s"
                   % (by[len(name) + 1:], flow, unsure))
    if not_judged:
        return hop(name, 'cannot be read: %s' % '; '.join(not_judged))
    return hop(name, 'no rule matches %s: the source address is kept' % flow)


def destination_pod_hops(pod):
    """The destination pod's eth0 holds its address and is up."""
    at = '%s eth0' % pod['key']
    with rtnl(netns_path(pod['netns'])) as ipr:
        ns = Netns(ipr)
        says, down = ns.link_says('eth0')
        addresses = [m.get('IFA_ADDRESS') for m in ipr.get_addr(family=socket.AF_INET,
                                                                index=ns.links['eth0']['index'])] \
            if 'eth0' in ns.links else []
    held = pod['ip'] in addresses
    return [hop(at, '%s inet %s' % (says, ', '.join(addresses) or 'none'),
                down or (None if held else 'eth0 does not hold %s' % pod['ip']))]


def _neighbour_says(address, mac, state):
    if mac is None and state is None:
        return 'neighbour %s: no entry yet (ARP resolves it on the first packet)' % address
    return 'neighbour %s lladdr %s %s' % (address, mac, state)


def _failed(address, state):
    return 'ARP for %s failed' % address if state and 'FAILED' in state else None
