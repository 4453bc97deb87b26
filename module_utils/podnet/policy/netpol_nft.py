"""NetworkPolicy enforcement on one node: the nftables table `ip podnet-policy`.

Where it hooks: family ip, one base chain on hook forward. Bridged pod-to-pod
traffic on cni0 reaches the ip forward hook through br_netfilter
(net.bridge.bridge-nf-call-iptables=1), routed traffic (pods of other nodes,
outside the cluster) reaches it anyway, so one hook sees every packet between
a pod and anything but its own node, once, with conntrack. Traffic between a
pod and its own node crosses only input and output, which the table leaves
alone: Kubernetes always allows it. The bridge family cannot do this job:
`ct` in a bridge table needs nf_conntrack_bridge, which kernels may lack
(CONFIG_NF_CONNTRACK_BRIDGE), and nft then refuses the rule. ARP and IPv6
never enter an ip table, so they are never dropped.

Layout (pods are matched by IP, so the veth does not matter):
  forward  (filter, prio 0, policy accept)
    ct state established,related accept
    meta mark & 0x8000 == 0x8000 accept                       hairpin (the Services table's mark)
    ip saddr vmap { <pod>: jump egress-<hash> | drop, ... }   egress-isolated pods
    ip daddr vmap { <pod>: jump ingress-<hash> | drop, ... }  ingress-isolated pods
  egress-<hash>:  allowed destinations/ports `return` (ingress is checked next), then drop
  ingress-<hash>: allowed sources/ports `accept`, then drop
Chains are named after their content: pods whose policies come to the same
rules share one, so the rule count follows the policies, not the pods.
A pod whose policies allow everything gets no entry, one that allows
nothing maps straight to drop. Denied traffic is dropped, never rejected.

Every expression is written exactly as `nft -j list` prints it back (sets
merged, sorted, a single element as a plain value), so nft.current_table()
equals nft.wanted_table() once the table is applied.
"""
import hashlib
import ipaddress
import json

from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.policy.netpol import EGRESS, INGRESS, isolating, named_port_numbers, peer_matches

FAMILY, TABLE = 'ip', 'podnet-policy'
BASE_CHAIN = {'name': 'forward', 'type': 'filter', 'hook': 'forward', 'prio': 0,
              'policy': 'accept'}
PROTOCOL_NUMBERS = {'TCP': 6, 'UDP': 17, 'SCTP': 132}
EVERY_IPV4 = [(0, 2 ** 32 - 1)]
ACCEPT, RETURN, DROP = {'accept': None}, {'return': None}, {'drop': None}
ESTABLISHED = [{'match': {'op': 'in', 'left': {'ct': {'key': 'state'}},
                          'right': ['established', 'related']}}, ACCEPT]
# A pod reaching itself through its own Service (hairpin): the Services
# table masquerades it to the pod's node, whose traffic Kubernetes never
# blocks, and marks it so.
HAIRPIN = [{'match': {'op': '==', 'left': {'&': [{'meta': {'key': 'mark'}}, nft.HAIRPIN_MARK]},
                      'right': nft.HAIRPIN_MARK}}, ACCEPT]


def _address(field, intervals):
    """[] for anyone, [match] for some, None for nobody."""
    if intervals is None or nft.merge(intervals) == EVERY_IPV4:
        return []
    if not intervals:
        return None
    return [nft.match('ip', field, '==', nft.canonical(intervals, True))]


def _dport(protocol, intervals):
    return nft.match(protocol.lower(), 'dport', '==', nft.canonical(intervals, False))


def _l4proto(protocols):
    names = [p.lower() for p in sorted(protocols, key=PROTOCOL_NUMBERS.get)]
    return {'match': {'op': '==', 'left': {'meta': {'key': 'l4proto'}},
                      'right': names[0] if len(names) == 1 else {'set': names}}}


# -- one policy rule ------------------------------------------------------------
class _Context:
    """The cluster as the compiler reads it. What a rule's peers resolve to
    does not depend on the pod being compiled, so it is worked out once."""

    def __init__(self, pods, namespaces):
        self.pods = [(p, int(ipaddress.ip_address(p['ip']))) for p in pods
                     if p.get('ip') and ipaddress.ip_address(p['ip']).version == 4]
        self.namespaces = namespaces
        self._cache = {}

    def once(self, compute, policy, rule):
        key = (compute.__name__, policy.namespace, rule)
        if key not in self._cache:
            self._cache[key] = compute(self, policy, rule)
        return self._cache[key]


def _block_intervals(block):
    if block.cidr.version != 4:
        return []  # never matches an IPv4 packet
    found = [(int(block.cidr.network_address), int(block.cidr.broadcast_address))]
    for net in block.excepts:
        lo, hi = int(net.network_address), int(net.broadcast_address)
        found = [piece for a, b in found for piece in ((a, min(b, lo - 1)), (max(a, hi + 1), b))
                 if piece[0] <= piece[1]]
    return found


def _peer_pods(ctx, policy, rule):
    """(pod, address) of every pod a rule's peers cover."""
    return [(p, ip) for p, ip in ctx.pods if not rule.peers or any(
        peer_matches(peer, policy.namespace, p, ctx.namespaces) for peer in rule.peers)]


def _peer_intervals(ctx, policy, rule):
    """IPv4 intervals of a rule's peers, None when it names none (anyone)."""
    if not rule.peers:
        return None
    found = []
    for peer in rule.peers:
        if peer.ip_block is not None:
            found += _block_intervals(peer.ip_block)
        else:
            found += [(ip, ip) for p, ip in ctx.pods
                      if peer_matches(peer, policy.namespace, p, ctx.namespaces)]
    return found


def _source(ctx, policy, rule):
    return _address('saddr', ctx.once(_peer_intervals, policy, rule))


def _destination(ctx, policy, rule):
    return _address('daddr', ctx.once(_peer_intervals, policy, rule))


def _port_matches(ports, target):
    """Matches for a rule's ports; named ports resolve on target (the pod
    receiving, for ingress), or are left to _named_egress when it is None."""
    every, ranges = set(), {}
    for port in ports:
        if port.port is None:
            every.add(port.protocol)
        elif isinstance(port.port, int):
            ranges.setdefault(port.protocol, []).append((port.port, port.end_port or port.port))
        elif target is not None:
            ranges.setdefault(port.protocol, []).extend(
                (n, n) for n in named_port_numbers(target, port.port, port.protocol))
    found = [[_l4proto(every)]] if every else []
    for protocol in sorted(set(ranges) - every, key=PROTOCOL_NUMBERS.get):
        if ranges[protocol]:
            found.append([_dport(protocol, ranges[protocol])])
    return found


def _named_egress(ctx, policy, rule):
    """Egress named ports resolve on each destination pod: one match of the
    pods' addresses per protocol and port number. Outside the cluster's
    pods a name means nothing, so nothing else matches."""
    by_port = {}
    for port in (p for p in rule.ports if isinstance(p.port, str)):
        for pod, ip in ctx.once(_peer_pods, policy, rule):
            for number in named_port_numbers(pod, port.port, port.protocol):
                by_port.setdefault((PROTOCOL_NUMBERS[port.protocol], port.protocol, number),
                                   []).append((ip, ip))
    return [[nft.match('ip', 'daddr', '==', nft.canonical(ips, True)),
             _dport(protocol, [(number, number)])]
            for (_, protocol, number), ips in sorted(by_port.items())]


def _rule_matches(ctx, pod, direction, policy, rule):
    """Match lists (one nft rule each, verdict left out) whose union is what
    the policy rule allows for this pod; [] when it allows nothing here."""
    egress = direction == EGRESS
    address = ctx.once(_destination if egress else _source, policy, rule)
    found = []
    if address is not None:
        if not rule.ports:
            return [address]
        found = [address + m for m in _port_matches(rule.ports, None if egress else pod)]
    if egress and any(isinstance(p.port, str) for p in rule.ports):
        found += ctx.once(_named_egress, policy, rule)
    return found


# -- the node's table -----------------------------------------------------------
def _chain_body(ctx, pod, direction, policies):
    """The rules of a pod's chain; None when they would allow everything,
    DROP when they allow nothing."""
    verdict = RETURN if direction == EGRESS else ACCEPT
    body, seen = [], set()
    for policy in policies:
        for rule in policy.rules(direction):
            for matches in _rule_matches(ctx, pod, direction, policy, rule):
                if not matches:
                    return None
                key = json.dumps(matches, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    body.append(matches + [verdict])
    return body + [[DROP]] if body else DROP


def _vmap(field, entries):
    entries = sorted(entries, key=lambda e: int(ipaddress.IPv4Address(e[0])))
    return [{'vmap': {'key': {'payload': {'protocol': 'ip', 'field': field}},
                      'data': {'set': [[ip, verdict] for ip, verdict in entries]}}}]


def chain_name(direction, body):
    """`ingress-<hash>` / `egress-<hash>`: named after what the chain holds,
    so pods whose policies come to the same rules share one chain, and a
    chain keeps its name while other pods come and go."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return '%s-%s' % (direction.lower(), digest[:12])


def compile_node(local_pods, cluster_pods, namespaces, policies, node_ips):
    """(chains, rules) of the table FAMILY TABLE on one node, for
    nft.table_commands() and nft.wanted_table().

    local_pods: this node's pods {namespace, name, labels, ip, ports} (more
    keys, such as veth or node, are ignored); cluster_pods: every pod of
    the cluster, the same shape;
    namespaces: {name: labels}; policies: [netpol.Policy];
    node_ips: this node's addresses. Its traffic with local pods crosses
    only the input and output hooks, which this table does not hook, so it
    is always allowed and needs no rule.
    """
    del node_ips  # allowed by construction, see above
    ctx = _Context(cluster_pods, dict(namespaces))
    chains, bodies, jumps = [dict(BASE_CHAIN)], [], {EGRESS: [], INGRESS: []}
    made = set()
    for pod in sorted(local_pods, key=lambda p: int(ipaddress.IPv4Address(p['ip']))):
        for direction in (EGRESS, INGRESS):
            selecting = isolating(pod, direction, policies)
            body = _chain_body(ctx, pod, direction, selecting) if selecting else None
            if body is None or body == DROP:
                jumps[direction] += [(pod['ip'], DROP)] if body == DROP else []
                continue
            name = chain_name(direction, body)
            if name not in made:
                made.add(name)
                chains.append({'name': name})
                bodies += [(name, expr) for expr in body]
            jumps[direction].append((pod['ip'], {'jump': {'target': name}}))
    if not jumps[EGRESS] and not jumps[INGRESS]:
        return chains, []
    forward = [ESTABLISHED, HAIRPIN] + [_vmap(field, jumps[d]) for field, d in
                                        (('saddr', EGRESS), ('daddr', INGRESS)) if jumps[d]]
    return chains, [('forward', expr) for expr in forward] + bodies
