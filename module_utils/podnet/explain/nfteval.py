"""What a node's nftables do to one new packet, judged from the ruleset as
`nft -j list ruleset` prints it: which rule drops it (the path explainer's
look at tables podnet did not write, and at its isolation table), and
whether a nat table masquerades it.

For drops, only what a forwarded packet meets on the filter hooks is
judged: base chains of type filter on prerouting, forward and postrouting,
in the ip and inet families, by priority. A rule whose matches this reader
cannot judge (sets of sets, maps, marks...) is reported as not judged,
never guessed. podnet's policy table is judged by the NetworkPolicy model,
its nat table by masqueraded_by(), so both are left out of judge().
"""
import ipaddress

HOOKS = ('prerouting', 'forward', 'postrouting')
FAMILIES = ('ip', 'inet')
SKIPPED_TABLES = ('podnet-policy', 'podnet-nat')
PROTOCOL_NUMBERS = {'tcp': 6, 'udp': 17, 'sctp': 132}


class Unknown(Exception):
    """A match or statement this reader does not judge."""


def judge(ruleset, packet):
    """(dropped_by, not_judged): dropped_by the `family table chain rule N`
    that drops or rejects packet (or a base chain's drop policy), else None;
    not_judged the rules skipped as unknown. packet: {src, dst, protocol,
    dport, iif, oif}, a new connection."""
    chains, rules = _index(ruleset)
    base = sorted((c for c in chains.values() if c.get('hook') in HOOKS and c.get('type') == 'filter'
                   and c['family'] in FAMILIES and c['table'] not in SKIPPED_TABLES),
                  key=lambda c: (HOOKS.index(c['hook']), c.get('prio', 0)))
    return _first(base, 'drop', chains, rules, packet)


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
            return packet['iif' if key == 'iifname' else 'oif']
        if key == 'nfproto':
            return 'ipv4'
    if 'ct' in left and left['ct'].get('key') == 'state':
        return 'new'
    raise Unknown('match on %s' % (left,))


def _contains(right, value):
    """Whether right (a value, prefix, range or set of them) holds value."""
    if value is None:
        return False
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
