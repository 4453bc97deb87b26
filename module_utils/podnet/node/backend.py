"""How pods on different nodes reach each other: the backend.

vxlan (flannel-like, the default): a VXLAN device `flannel.1` (VNI 1, UDP
8472, no learning, MTU underlay - 50) holding the node's pod network address;
for every other node a static FDB entry (its VTEP MAC -> its underlay
address), a permanent neighbour (its pod network address -> its VTEP MAC)
and an onlink route to its pod CIDR via that address.
host-gw: a route per remote pod CIDR via that node's underlay address; the
nodes must share one L2 segment.

VXLAN carries whole frames past every check of the pod network: the source
guard, isolation and NetworkPolicy see only the outer datagram. So with
vxlan a table of the backend's own (`inet podnet-vxlan`, see guard_ruleset)
lets only the peers' VTEPs reach the port. host-gw has no such port: its
packets are ordinary IP, which those checks see.

Both are read and planned as one normalised dict, so switching backends
is a plan like any other: the other backend's objects are removed.
"""
import errno
import ipaddress
import socket

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import Action, Reconciler
from ansible.module_utils.podnet.kernel import nfteval
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.kernel.netlink import (
    RT_TABLE_MAIN,
    NetlinkError,
    delete_link,
    link_index,
    links_by_name,
    rtnl,
)
from ansible.module_utils.podnet.node.network import BRIDGE, VTEP, from_pod_ports

VNI, VXLAN_PORT, VXLAN_OVERHEAD = 1, 8472, 50
RTPROT_PODNET = 200  # marks the routes podnet owns
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
GUARD = 'inet podnet-vxlan'


def network_address(cidr):
    return str(ipaddress.IPv4Network(cidr).network_address)


def check_host_gw(node, peers):
    """host-gw routes via a peer's underlay address, so it must be on-link."""
    own = ipaddress.IPv4Interface('%s/%d' % (node['underlay_ip'], node['underlay_prefixlen']))
    for peer in peers:
        if ipaddress.IPv4Address(peer['underlay_ip']) not in own.network:
            raise SpecError('podnet_backend', 'host-gw needs the nodes on one L2 segment: %s (%s) '
                            'is not in %s of %s; use vxlan' % (
                                peer['name'], peer['underlay_ip'], own.network, node['name']))


# state absent: neither backend's device nor any route podnet owns.
NOTHING = {'vtep': None, 'fdb': {}, 'neigh': {}, 'routes': {}, 'guard': None}


def guard_ruleset(node, peers):
    """(chains, rules) of the table that keeps VXLAN to the peers' VTEPs.

    A pod needs no capability to send a VXLAN datagram: a plain UDP socket
    to a node's port 8472 had the node decapsulate it and deliver the inner
    packet, with any source the pod wrote, past the source guard, isolation
    and NetworkPolicy (issue 21). So:
    - input: the port answers only datagrams that come in on the underlay
      from a peer's underlay address (a pod on this node, or one whose
      datagram crossed flannel.1 to this node's pod addresses, is dropped);
    - forward: a pod's datagram to UDP 8472 leaves its node only toward a
      pod. To another node's underlay it would leave masqueraded to this
      node's underlay address, a peer's, which the other node must accept;
      so it is dropped here, where it still comes from a pod's port (cni0,
      or the pod's routed veth under a ptp chain)."""
    vxlan = nft.match('udp', 'dport', '==', VXLAN_PORT)
    pod_cidrs = [ipaddress.IPv4Network(n['pod_cidr']) for n in [node] + list(peers)]
    to_pods = nft.canonical([(int(n.network_address), int(n.broadcast_address)) for n in pod_cidrs], True)
    forward = [[port, vxlan, nft.match('ip', 'daddr', '!=', to_pods), nft.DROP] for port in from_pod_ports()]
    local = [[vxlan, nft.DROP]]
    if peers:
        addresses = [int(ipaddress.IPv4Address(p['underlay_ip'])) for p in peers]
        vteps = nft.canonical([(a, a) for a in addresses], True)
        local = [[vxlan, nft.meta_match('iifname', '!=', node['underlay_ifname']), nft.DROP],
                 [vxlan, nft.match('ip', 'saddr', '!=', vteps), nft.DROP]]
    # nft lists rules chain by chain: written the same way, they read back equal.
    chains = [{'name': hook, 'type': 'filter', 'hook': hook, 'prio': -10, 'policy': 'accept'}
              for hook in ('forward', 'input')]
    return chains, [('forward', r) for r in forward] + [('input', r) for r in local]


def wanted_state(backend, node, peers):
    """The normalised state of this node for the backend."""
    if backend == 'host-gw':
        check_host_gw(node, peers)
        return {'vtep': None, 'fdb': {}, 'neigh': {}, 'guard': None,
                'routes': {p['pod_cidr']: (p['underlay_ip'], node['underlay_ifname'], False)
                           for p in peers}}
    return {
        'vtep': {'vni': VNI, 'port': VXLAN_PORT, 'local': node['underlay_ip'], 'learning': 0,
                 'mac': node['vtep_mac'], 'mtu': node['underlay_mtu'] - VXLAN_OVERHEAD,
                 'address': network_address(node['pod_cidr']) + '/32'},
        'fdb': {p['vtep_mac']: p['underlay_ip'] for p in peers},
        'neigh': {network_address(p['pod_cidr']): p['vtep_mac'] for p in peers},
        'routes': {p['pod_cidr']: (network_address(p['pod_cidr']), VTEP, True) for p in peers},
        'guard': guard_ruleset(node, peers),
    }


def foreign_drops(run, backend, node, peers):
    """['<flow>: dropped by <family table chain rule N>: <rule>'] for the
    traffic between this node and its peers that a table podnet does not own
    would drop: VXLAN both ways on the underlay, or host-gw's pod packets
    (issue 21: an inet input drop of UDP 8472 went unseen)."""
    return nfteval.drops(nft.foreign_ruleset(run), _peer_flows(backend, node, peers))


def _peer_flows(backend, node, peers):
    ifname, own = node['underlay_ifname'], node['underlay_ip']
    if backend == 'vxlan':
        udp = dict(protocol='udp', dport=VXLAN_PORT)
        return [flow for peer in peers for flow in (
            ('VXLAN from %s (%s)' % (peer['name'], peer['underlay_ip']),
             dict(udp, src=peer['underlay_ip'], dst=own, stages=nfteval.delivered(ifname))),
            ('VXLAN to %s (%s)' % (peer['name'], peer['underlay_ip']),
             dict(udp, src=own, dst=peer['underlay_ip'], stages=nfteval.sent(ifname))))]
    tcp, pod = dict(protocol='tcp', dport=80), _a_pod(node)
    port = nfteval.POD_PORT
    return [flow for peer in peers for flow in (
        ('pod %s to pod %s on %s' % (pod, _a_pod(peer), peer['name']),
         dict(tcp, src=pod, dst=_a_pod(peer),
              stages=nfteval.into_bridge(port, BRIDGE) + nfteval.routed(BRIDGE, ifname))),
        ('pod %s on %s to pod %s' % (_a_pod(peer), peer['name'], pod),
         dict(tcp, src=_a_pod(peer), dst=pod,
              stages=nfteval.routed(ifname, BRIDGE) + nfteval.out_of_bridge(BRIDGE, port))))]


def _a_pod(node):
    return str(ipaddress.IPv4Network(node['pod_cidr']).network_address + 2)


def read_state(run):
    """The backend's objects as the kernel holds them; run: a command runner
    (AnsibleModule.run_command) for nft."""
    guard = nft.read_table(run, *GUARD.split())
    with rtnl() as ipr:
        links = links_by_name(ipr)
        by_index = {link['index']: n for n, link in links.items()}
        vtep = links.get(VTEP)
        state = {'vtep': _vtep(ipr, vtep) if vtep else None, 'fdb': {}, 'neigh': {}, 'routes': {},
                 'guard': guard}
        for route in ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN, proto=RTPROT_PODNET):
            dst = '%s/%d' % (route.get('RTA_DST'), route['dst_len'])
            state['routes'][dst] = (route.get('RTA_GATEWAY'), by_index.get(route.get('RTA_OIF')),
                                    bool(route['flags'] & RTNH_F_ONLINK))
        if vtep:
            for entry in ipr.fdb('dump', ifindex=vtep['index']):
                if entry.get('NDA_DST'):
                    state['fdb'][entry.get('NDA_LLADDR')] = entry.get('NDA_DST')
            for entry in ipr.get_neighbours(family=socket.AF_INET, ifindex=vtep['index']):
                if entry['state'] & NUD_PERMANENT:
                    state['neigh'][entry.get('NDA_DST')] = entry.get('NDA_LLADDR')
    return state


def _vtep(ipr, link):
    data = link.get(('IFLA_LINKINFO', 'IFLA_INFO_DATA'))
    addrs = ['%s/%d' % (a.get('IFA_ADDRESS'), a['prefixlen'])
             for a in ipr.get_addr(family=socket.AF_INET, index=link['index'])]
    if link.get(('IFLA_LINKINFO', 'IFLA_INFO_KIND')) != 'vxlan' or data is None:
        return {'kind': 'not vxlan'}
    return {'vni': data.get('IFLA_VXLAN_ID'), 'port': data.get('IFLA_VXLAN_PORT'),
            'local': data.get('IFLA_VXLAN_LOCAL'), 'learning': data.get('IFLA_VXLAN_LEARNING'),
            'mac': link.get('IFLA_ADDRESS'), 'mtu': link.get('IFLA_MTU'),
            'address': addrs[0] if len(addrs) == 1 else addrs}


def plan(current, wanted):
    """[Action] turning current into wanted."""
    actions = []
    if current['vtep'] != wanted['vtep']:
        if current['vtep'] is not None:
            actions.append(Action('delete_vtep', VTEP, 'not wanted' if wanted['vtep'] is None
                                  else _differs(current['vtep'], wanted['vtep'])))
            current = dict(current, fdb={}, neigh={},
                           routes={d: r for d, r in current['routes'].items() if r[1] != VTEP})
        if wanted['vtep'] is not None:
            actions.append(Action('create_vtep', VTEP, 'missing' if current['vtep'] is None
                                  else 'recreated with the wanted settings'))
    for kind in ('fdb', 'neigh', 'routes'):
        have, want = current[kind], wanted[kind]
        actions += [Action('del_' + kind, k, 'no node has it: %s' % _show(kind, have[k]))
                    for k in sorted(have) if k not in want]
        actions += [Action('set_' + kind, k, 'missing, want %s' % _show(kind, want[k])
                           if k not in have else '%s, want %s' % (_show(kind, have[k]),
                                                                  _show(kind, want[k])))
                    for k in sorted(want) if have.get(k) != want[k]]
    if wanted['guard'] is None:
        return actions + nft.plan_delete(GUARD, current['guard'])
    return actions + nft.plan_table(GUARD, current['guard'], *wanted['guard'])


def _differs(have, want):
    return ', '.join('%s %s, want %s' % (k, have.get(k), want[k])
                     for k in sorted(want) if have.get(k) != want[k])


def _show(kind, value):
    """One entry as `ip` and `bridge` print it."""
    if kind == 'routes':
        gateway, ifname, onlink = value
        return 'via %s dev %s%s' % (gateway, ifname, ' onlink' if onlink else '')
    return {'fdb': 'dst %s', 'neigh': 'lladdr %s'}[kind] % (value,)


def show(state):
    """The state as the diff shows it: entries as `ip route`, `bridge fdb`
    and `ip neigh` print them, the guard as `nft list table` does."""
    return dict(state, guard=nft.describe(*state['guard']) if state['guard'] else None,
                **{kind: {k: _show(kind, v) for k, v in sorted(state[kind].items())}
                   for kind in ('fdb', 'neigh', 'routes')})


class Backend(Reconciler):
    """The backend of one node: its device, FDB, neighbours, routes and guard."""

    def __init__(self, run, backend, node, peers, state_dir, absent=False):
        self.subject = 'podnet_backend %s' % ('absent' if absent else backend)
        self.run, self.backend, self.node, self.peers = run, backend, node, peers
        self.lock_dir, self.absent = state_dir, absent
        self._wanted = NOTHING if absent else wanted_state(backend, node, peers)
        self._ipr = None  # the netlink socket while apply() runs

    def read(self):
        return read_state(self.run)

    def plan(self, current):
        return plan(current, self._wanted)

    def wanted(self, current):
        return self._wanted

    def show(self, state):
        return show(state)

    def apply(self, actions, current):
        """The guard table first, then every netlink change on one socket."""
        super().apply([a for a in actions if a.verb in nft.TABLE_VERBS], current)
        with rtnl() as self._ipr:
            super().apply([a for a in actions if a.verb not in nft.TABLE_VERBS], current)

    def result(self, current, actions):
        return {} if self.absent else dict(
            foreign_drops=foreign_drops(self.run, self.backend, self.node, self.peers))

    def warnings(self, current, result):
        return ['a table podnet does not own would drop traffic between nodes: %s' % w
                for w in result.get('foreign_drops', ())]

    def do_set_table(self, action, _current):
        nft.apply(self.run, nft.table_commands(*GUARD.split(), *self._wanted['guard']), action.target)

    def do_delete_table(self, action, _current):
        nft.apply(self.run, nft.delete_commands(*GUARD.split()), action.target)

    def do_delete_vtep(self, action, _current):
        delete_link(self._ipr, action.target)

    def do_create_vtep(self, _action, _current):
        vtep, ipr = self._wanted['vtep'], self._ipr
        ipr.link('add', ifname=VTEP, kind='vxlan', vxlan_id=vtep['vni'], vxlan_port=vtep['port'],
                 vxlan_local=vtep['local'], vxlan_learning=0, address=vtep['mac'], mtu=vtep['mtu'],
                 vxlan_link=link_index(ipr, self.node['underlay_ifname']))
        index = link_index(ipr, VTEP)
        address, length = vtep['address'].split('/')
        ipr.addr('add', index=index, address=address, prefixlen=int(length))
        ipr.link('set', index=index, state='up')

    def do_set_routes(self, action, _current):
        gateway, ifname, onlink = self._wanted['routes'][action.target]
        self._ipr.route('replace', dst=action.target, gateway=gateway, oif=link_index(self._ipr, ifname),
                        proto=RTPROT_PODNET, flags=RTNH_F_ONLINK if onlink else 0)

    def do_del_routes(self, action, _current):
        self._ipr.route('del', dst=action.target, proto=RTPROT_PODNET)

    def do_set_fdb(self, action, _current):
        """The kernel has no fdb replace for VXLAN remotes: drop any old
        remote of this MAC, then append the wanted one."""
        index = link_index(self._ipr, VTEP)
        try:
            self._ipr.fdb('del', ifindex=index, lladdr=action.target)
        except NetlinkError as exc:
            if exc.code != errno.ENOENT:
                raise
        self._ipr.fdb('append', ifindex=index, lladdr=action.target, dst=self._wanted['fdb'][action.target])

    def do_del_fdb(self, action, _current):
        self._ipr.fdb('del', ifindex=link_index(self._ipr, VTEP), lladdr=action.target)

    def do_set_neigh(self, action, _current):
        self._ipr.neigh('replace', ifindex=link_index(self._ipr, VTEP), dst=action.target,
                        lladdr=self._wanted['neigh'][action.target], state=NUD_PERMANENT)

    def do_del_neigh(self, action, _current):
        self._ipr.neigh('del', ifindex=link_index(self._ipr, VTEP), dst=action.target)
