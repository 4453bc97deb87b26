"""What a node's nftables do to one new packet, judged from the ruleset as
`nft -j list ruleset` prints it: which rule drops it (the path explainer's
look at tables podnet did not write, and at its isolation table), and
whether a nat table masquerades it.

For drops, a packet is judged along the stages it meets, in order: a
stage is a hook of some families, with the interfaces the packet has there
(routed() by default: the device's ingress, the ip and inet prerouting,
forward and postrouting hooks, the egress). Every base chain of a stage is
run, by priority; an ingress or egress chain only on its own device. A
rule whose matches this reader cannot judge (sets of sets, maps, marks...)
is reported as not judged, never guessed. podnet's policy table is judged
by the NetworkPolicy model, its nat table by masqueraded_by() and its
Services table (maps, numgen) by the Service hop of the path explainer, so
all three are left out of judge().
"""
import ipaddress
from collections import namedtuple

from ansible.module_utils.podnet.kernel import nft

HOOKS = ('prerouting', 'forward', 'postrouting')
IP_FAMILIES = ('ip', 'inet')
# ingress chains are bound to a device: netdev's, and inet's since Linux 5.10
DEVICE_FAMILIES = ('netdev', 'inet')
SKIPPED_TABLES = ('podnet-policy', 'podnet-nat', 'podnet-services')
DROPPING_TYPES = ('filter', 'route')  # nat chains translate; a drop there is not judged
PROTOCOL_NUMBERS = {'tcp': 6, 'udp': 17, 'sctp': 132}
# An interface name standing for any pod's port on the bridge: it matches
# `iifname "veth*"` and a chain bound to any one pod's veth.
POD_PORT = 'veth*'

Stage = namedtuple('Stage', 'families hook iif oif bridge', defaults=(None, None, None))


def routed(iif, oif):
    """A packet the node forwards from iif to oif."""
    return ([Stage(DEVICE_FAMILIES, 'ingress', iif=iif)] +
            [Stage(IP_FAMILIES, hook, iif, oif) for hook in HOOKS] +
            [Stage(('netdev',), 'egress', oif=oif)])


def bridged(in_port, out_port, bridge):
    """A frame the bridge forwards between two of its ports; br_netfilter
    hands it to the ip hooks as coming in and going out on the bridge."""
    return ([Stage(DEVICE_FAMILIES, 'ingress', iif=in_port)] +
            [Stage(('bridge',), hook, in_port, out_port, bridge) for hook in HOOKS] +
            [Stage(IP_FAMILIES, hook, bridge, bridge) for hook in HOOKS] +
            [Stage(('netdev',), 'egress', oif=out_port)])


def into_bridge(port, bridge):
    """A frame for the bridge's own address (the pods' gateway), from a port."""
    return [Stage(DEVICE_FAMILIES, 'ingress', iif=port),
            Stage(('bridge',), 'prerouting', iif=port, bridge=bridge),
            Stage(('bridge',), 'input', iif=port, bridge=bridge)]


def out_of_bridge(bridge, port):
    """A packet the node routed onto the bridge, leaving by one of its ports."""
    return [Stage(('bridge',), 'output', oif=port, bridge=bridge),
            Stage(('bridge',), 'postrouting', oif=port, bridge=bridge),
            Stage(('netdev',), 'egress', oif=port)]


def delivered(iif):
    """A packet for the node itself, coming in on iif."""
    return [Stage(DEVICE_FAMILIES, 'ingress', iif=iif),
            Stage(IP_FAMILIES, 'prerouting', iif=iif), Stage(IP_FAMILIES, 'input', iif=iif)]


def sent(oif):
    """A packet the node itself sends out of oif."""
    return [Stage(IP_FAMILIES, 'output', oif=oif), Stage(IP_FAMILIES, 'postrouting', oif=oif),
            Stage(('netdev',), 'egress', oif=oif)]


class Unknown(Exception):
    """A match or statement this reader does not judge."""


def judge(ruleset, packet):
    """(dropped_by, not_judged): dropped_by the `family table chain rule N`
    that drops or rejects packet (or a base chain's drop policy), else None;
    not_judged the rules skipped as unknown. packet: {src, dst, protocol,
    dport, iif, oif}, a new connection, with the stages it meets (default
    routed(iif, oif)), and reverse_path False when its source is spoofed
    (the node routes it elsewhere than its iif)."""
    chains, rules = _index(ruleset)
    not_judged = []
    for stage in packet.get('stages') or routed(packet['iif'], packet['oif']):
        base = sorted((c for c in chains.values() if c['family'] in stage.families
                       and c.get('hook') == stage.hook and c.get('type') in DROPPING_TYPES
                       and c['table'] not in SKIPPED_TABLES and _bound(c, stage)), key=lambda c: c.get('prio', 0))
        there = dict(packet, iif=stage.iif, oif=stage.oif, bridge=stage.bridge)
        dropped_by, skipped = _first(base, 'drop', chains, rules, there)
        not_judged += skipped
        if dropped_by:
            return dropped_by, not_judged
    return None, not_judged


def drops(ruleset, flows):
    """['<flow>: dropped by <family table chain NAME rule N>: <rule>'] of
    the flows [(description, packet)] that the ruleset drops."""
    found = []
    for flow, packet in flows:
        dropped_by = judge(ruleset, packet)[0]
        if dropped_by:
            found.append('%s: dropped by %s: %s' % (flow, dropped_by, _rule_text(ruleset, dropped_by)))
    return found


def _rule_text(ruleset, where):
    """The rule `family table chain NAME rule N` names, as nft lists it."""
    words = where.split()
    if words[-2] != 'rule':
        return 'the chain\'s policy'
    family, table, chain, index = words[0], words[1], words[3], int(words[-1])
    rules = [i['rule']['expr'] for i in ruleset['nftables'] if 'rule' in i
             and (i['rule']['family'], i['rule']['table'], i['rule']['chain']) == (family, table, chain)]
    return nft.describe([], [(chain, rules[index])])[chain][0]


def _bound(chain, stage):
    """Whether a chain runs at the stage: an ingress or egress chain only
    on a device of its own (`dev`, one name or a list)."""
    if stage.hook not in ('ingress', 'egress'):
        return True
    devices = chain.get('dev') or []
    device = stage.iif if stage.hook == 'ingress' else stage.oif
    return any(_name_matches(d, device) for d in ([devices] if isinstance(devices, str) else devices))


def _name_matches(pattern, name):
    """An interface name against nft's pattern: `veth*` is a wildcard,
    `veth\\*` the name with a star; POD_PORT stands for any pod's veth."""
    if name is None:
        name = ''  # a packet the node sends has no input interface
    if name == POD_PORT:
        return pattern.startswith('veth')
    if pattern.endswith('*') and not pattern.endswith('\\*'):
        return name.startswith(pattern[:-1])
    return name == pattern.replace('\\*', '*')


def has_table(ruleset, family, table):
    return any(i['table']['family'] == family and i['table']['name'] == table
               for i in ruleset.get('nftables', []) if 'table' in i)


def masqueraded_by(ruleset, family, table, packet):
    """(masqueraded_by, not_judged) of the nat chains of one table, as
    judge() says it for drops."""
    chains, rules = _index(ruleset)
    base = sorted((c for c in chains.values() if (c['family'], c['table']) == (family, table)
                   and c.get('type') == 'nat' and 'hook' in c), key=lambda c: c.get('prio', 0))
    return _first(base, 'masquerade', chains, rules, packet)


def _index(ruleset):
    items = ruleset.get('nftables', [])
    chains = {(c['family'], c['table'], c['name']): c for c in (i['chain'] for i in items if 'chain' in i)}
    rules = {}
    for rule in (i['rule'] for i in items if 'rule' in i):
        rules.setdefault((rule['family'], rule['table'], rule['chain']), []).append(rule['expr'])
    return chains, rules


def _first(base_chains, wanted, chains, rules, packet):
    """(where, not_judged): where the first base chain's verdict is wanted."""
    not_judged = []
    for chain in base_chains:
        key = (chain['family'], chain['table'], chain['name'])
        verdict = _run_chain(key, chains, rules, packet, not_judged, depth=0)
        if verdict and verdict[0] == wanted:
            return verdict[1], not_judged
    return None, not_judged


def _run_chain(key, chains, rules, packet, not_judged, depth):
    """('drop', where) or ('accept', where) or None (fell through)."""
    chain = chains.get(key, {})
    name = '%s %s chain %s' % key
    for index, expressions in enumerate(rules.get(key, [])):
        where = '%s rule %d' % (name, index)
        try:
            verdict = _run_rule(expressions, packet)
        except Unknown as exc:
            not_judged.append('%s (%s)' % (where, exc))
            continue
        if verdict is None:
            continue
        kind, target = verdict
        if kind in ('drop', 'accept', 'masquerade'):
            return kind, where
        if kind == 'return':
            return None
        jumped = _run_chain(key[:2] + (target,), chains, rules, packet, not_judged, depth + 1) \
            if depth < 16 else None
        if jumped or kind == 'goto':
            return jumped
    if chain.get('policy') == 'drop' and 'hook' in chain:
        return 'drop', '%s policy drop' % name
    return None


def _run_rule(expressions, packet):
    """The rule's verdict when every match holds, else None."""
    for expr in expressions:
        if 'match' in expr:
            if not _holds(expr['match'], packet):
                return None
        elif 'drop' in expr or 'reject' in expr:
            return 'drop', None
        elif 'accept' in expr:
            return 'accept', None
        elif 'masquerade' in expr:
            return 'masquerade', None
        elif 'return' in expr:
            return 'return', None
        elif 'jump' in expr or 'goto' in expr:
            kind = 'jump' if 'jump' in expr else 'goto'
            return kind, expr[kind]['target']
        elif not set(expr) <= {'counter', 'log', 'limit'}:
            raise Unknown('%s' % ', '.join(sorted(expr)))
    return None


def _holds(match, packet):
    value = _left(match.get('left'), packet)
    found = _contains(match.get('right'), value)
    op = match.get('op', '==')
    if op in ('==', 'in'):
        return found
    if op == '!=':
        return not found
    raise Unknown('operator %s' % op)


def _left(left, packet):
    left = left or {}
    if 'payload' in left:
        field, protocol = left['payload'].get('field'), left['payload'].get('protocol')
        if protocol == 'ip' and field in ('saddr', 'daddr'):
            return ipaddress.ip_address(packet['src' if field == 'saddr' else 'dst'])
        if field == 'dport' and protocol in ('th', 'tcp', 'udp', 'sctp'):
            if protocol != 'th' and protocol != packet['protocol']:
                return None  # a tcp dport match on a UDP packet does not hold
            return packet['dport']
    if 'meta' in left:
        key = left['meta'].get('key')
        if key == 'l4proto':
            return PROTOCOL_NUMBERS[packet['protocol']]
        if key in ('iifname', 'oifname'):
            return InterfaceName(packet['iif' if key == 'iifname' else 'oif'] or '')
        if key in ('ibrname', 'obrname'):
            return InterfaceName(packet.get('bridge') or '')
        if key == 'nfproto':
            return 'ipv4'
    if 'ct' in left and left['ct'].get('key') == 'state':
        return 'new'
    if left == nft.REVERSE_PATH:
        # The packets judged here come from the addresses of pods and
        # nodes, so their source routes back the way they came.
        return packet.get('reverse_path', True)
    raise Unknown('match on %s' % (left,))


class InterfaceName(str):
    """A packet's interface name: matched as nft matches names."""


def _contains(right, value):
    """Whether right (a value, prefix, range or set of them) holds value."""
    if value is None:
        return False
    if isinstance(value, InterfaceName) and isinstance(right, str):
        return _name_matches(right, value)
    if isinstance(right, dict) and 'set' in right:
        return any(_contains(item, value) for item in right['set'])
    if isinstance(right, list):
        return any(_contains(item, value) for item in right)
    if isinstance(right, dict) and 'prefix' in right:
        net = ipaddress.ip_network('%s/%d' % (right['prefix']['addr'], right['prefix']['len']))
        return value in net
    if isinstance(right, dict) and 'range' in right:
        low, high = right['range']
        if isinstance(value, ipaddress.IPv4Address):
            return ipaddress.ip_address(low) <= value <= ipaddress.ip_address(high)
        return low <= value <= high
    if isinstance(value, ipaddress.IPv4Address):
        return value == ipaddress.ip_address(right)
    if isinstance(right, str) and right in PROTOCOL_NUMBERS:
        right = PROTOCOL_NUMBERS[right]
    return value == right
