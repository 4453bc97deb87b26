"""nftables through `nft -j` (libnftables JSON): whole tables, atomically.

podnet owns its tables outright. A wanted table is a list of chains and
rules; it is applied as one transaction that creates, empties and refills
the table, so the kernel never sees half a ruleset. Checking costs one
`nft -j list table`: chains and rules are compared as nft prints them, with
handles dropped, so podnet writes expressions in the form nft prints.
"""
import errno
import hashlib
import ipaddress
import json
import os
import re
import socket
import struct

from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.reconcile import Action


# What nft prints for a kernel ENOENT (a table or chain that is not there):
# the errno's own text, as nft prints the kernel's error.
NOT_FOUND = os.strerror(errno.ENOENT)


class NftError(PodnetError):
    """nft refused a command."""


def list_items(run, *what):
    """The items `nft -j list WHAT...` prints; None when it names a table
    that does not exist."""
    rc, out, err = run(['nft', '-j', 'list'] + list(what))
    if rc != 0:
        if NOT_FOUND in err:
            return None
        raise NftError(' '.join(what[1:]) or what[0], err.strip())
    return json.loads(out)['nftables']


def podnets(item):
    """Whether a `nft -j list ruleset` item belongs to a table podnet owns."""
    (kind, body), = item.items()
    name = body.get('name') if kind == 'table' else body.get('table')
    return isinstance(name, str) and name.startswith('podnet-')


def foreign_ruleset(run):
    """The tables podnet does not own, as `nft -j list ruleset` gives them:
    the names first, then only those tables (usually none), not the whole
    ruleset with podnet's policy table, large at scale."""
    tables = [i['table'] for i in list_items(run, 'tables') if 'table' in i and not podnets(i)]
    items = [item for t in tables  # a table gone since it was listed has no items
             for item in list_items(run, 'table', t['family'], t['name']) or []]
    for chain in (i['chain'] for i in items if 'chain' in i):
        if chain.get('hook') in ('ingress', 'egress') and 'dev' not in chain:
            chain['dev'] = _chain_devices(run, chain)
    return {'nftables': items}


def _chain_devices(run, chain):
    """The devices of an ingress or egress chain, which nft 1.0.6 (Debian
    12) leaves out of its JSON: from the chain as `nft list chain` prints
    it (`device "eth0"` or `devices = { eth0, eth1 }`)."""
    rc, out, _ = run(['nft', 'list', 'chain', chain['family'], chain['table'], chain['name']])
    found = re.search(r'\bdevices? (?:= \{ ([^}]*) \}|"([^"]*)")', out) if rc == 0 else None
    if not found:
        return []
    return [name.strip().strip('"') for name in (found.group(1) or found.group(2)).split(',')]


def read_table(run, family, name):
    """(chains, rules) of the table as the kernel holds it, handles dropped;
    None when there is no such table."""
    items = list_items(run, 'table', family, name)
    if items is None:
        return None
    chains = [{k: v for k, v in i['chain'].items() if k not in ('family', 'table', 'handle')}
              for i in items if 'chain' in i]
    rules = [(i['rule']['chain'], i['rule']['expr']) for i in items if 'rule' in i]
    return chains, rules


def current_table(run, family, name):
    """The table as wanted_table() shapes it, or None."""
    found = read_table(run, family, name)
    return None if found is None else wanted_table(*found)


def wanted_table(chains, rules):
    """Canonical, comparable form of a table's chains and rules. Set
    elements are sorted: nft prints a hashed set in its own order."""
    return json.dumps(_sorted_sets([sorted(chains, key=lambda c: c['name']),
                                    [list(r) for r in rules]]), sort_keys=True)


def _sorted_sets(value):
    if isinstance(value, dict):
        return {k: sorted((_sorted_sets(i) for i in v), key=lambda i: json.dumps(i, sort_keys=True))
                if k == 'set' and isinstance(v, list) else _sorted_sets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sorted_sets(i) for i in value]
    return value


def table_commands(family, name, chains, rules):
    """One transaction: ensure, delete, recreate with chains and rules.

    chains: [{name, type, hook, prio, policy}]; rules: [(chain, [expr...])].
    """
    base = {'family': family, 'name': name}
    cmds = [{'add': {'table': dict(base)}}, {'delete': {'table': dict(base)}},
            {'add': {'table': dict(base)}}]
    for chain in chains:
        cmds.append({'add': {'chain': dict(chain, family=family, table=name)}})
    for chain, expr in rules:
        cmds.append({'add': {'rule': {'family': family, 'table': name, 'chain': chain,
                                      'expr': expr}}})
    return {'nftables': cmds}


# Packet marks the Services table sets, as kube-proxy's: masquerade this
# packet on its way out; and hairpin, a pod reaching itself through its own
# Service, which the masquerade makes traffic from its node, and which the
# policy table lets pass as Kubernetes lets a pod's node reach it.
MASQUERADE_MARK, HAIRPIN_MARK = 0x4000, 0x8000


# -- tables written as text --------------------------------------------------------
# A table of maps and per-object chains (Services) reads best written in
# nft's own syntax, which its JSON cannot be compared with. Such a table is
# checked by digest instead: the digest of its listing right after podnet
# loaded it, kept beside the text it was loaded from.
def load_text(run, family, name, text):
    """Replace the table by text (`table FAMILY NAME { ... }`) in one transaction."""
    script = 'add table %s %s\ndelete table %s %s\n%s' % (family, name, family, name, text)
    rc, _, err = run(['nft', '-f', '-'], data=script)
    if rc != 0:
        raise NftError('%s %s' % (family, name), 'nft refused the ruleset: %s' % err.strip())


def listing_digest(run, family, name):
    """A digest of the table as the kernel lists it, None when there is no
    table. Elements of sets with timeouts (what packets put there and time
    takes away, e.g. session affinity; nft 1.0.6 does not print the
    `dynamic` flag) are left out, and elements sorted: a hash set lists in
    the kernel's order."""
    items = list_items(run, 'table', family, name)
    if items is None:
        return None
    kept = []
    for item in items:
        (kind, body), = item.items()
        if kind == 'metainfo':
            continue
        body = {k: v for k, v in body.items() if k != 'handle'}
        if {'dynamic', 'timeout'} & set(body.get('flags') or ()):
            body.pop('elem', None)
        elif 'elem' in body:
            body['elem'] = sorted(body['elem'], key=lambda e: json.dumps(e, sort_keys=True))
        kept.append({kind: body})
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


NETLINK_NETFILTER, NFT_MSG_GETGEN, NFTA_GEN_ID = 12, (10 << 8) | 16, 1  # nfnetlink's nftables subsystem


def generation():
    """(boot id, network namespace inode, nftables generation id) of the
    calling process's namespace. The kernel bumps the generation on every
    committed change to any table of the namespace, and packets filling a
    dynamic set do not: while it holds, every table is as it was. Listing
    a table of 1,000 Services takes nft a second; this takes a netlink
    round trip."""
    with open('/proc/sys/kernel/random/boot_id') as f:
        boot = f.read().strip()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        body = struct.pack('=BBH', socket.AF_UNSPEC, 0, 0)  # nfgenmsg: any family, version 0
        sock.send(struct.pack('=IHHII', 16 + len(body), NFT_MSG_GETGEN, 1, 1, 0) + body)
        reply = sock.recv(65536)
    finally:
        sock.close()
    offset, gen_id = 20, None  # past nlmsghdr and nfgenmsg
    while offset + 4 <= len(reply):
        length, kind = struct.unpack_from('=HH', reply, offset)
        if kind & 0x3fff == NFTA_GEN_ID:
            gen_id = struct.unpack_from('>I', reply, offset + 4)[0]
        offset += max((length + 3) & ~3, 4)
    return [boot, os.stat('/proc/self/ns/net').st_ino, gen_id]


NFT_MSG_GETTABLE, NFTA_TABLE_NAME, NLMSG_ERROR = (10 << 8) | 1, 1, 2
FAMILIES = {'inet': 1, 'ip': 2, 'arp': 3, 'netdev': 5, 'bridge': 7, 'ip6': 10}  # NFPROTO_*


def table_exists(family, name):
    """Whether the calling process's namespace has the table, in one netlink
    round trip: `nft list table` costs an exec (about 4 ms), which a call
    that only needs to know pays on every pod (cniplugin/guard.py)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        text = name.encode() + b'\0'
        body = struct.pack('=BBH', FAMILIES[family], 0, 0) + struct.pack('=HH', 4 + len(text), NFTA_TABLE_NAME) \
            + text + b'\0' * (-len(text) % 4)
        sock.send(struct.pack('=IHHII', 16 + len(body), NFT_MSG_GETTABLE, 1, 1, 0) + body)
        reply = sock.recv(65536)
    finally:
        sock.close()
    if struct.unpack_from('=H', reply, 4)[0] != NLMSG_ERROR:
        return True
    error = -struct.unpack_from('=i', reply, 16)[0]
    if error == errno.ENOENT:
        return False
    raise NftError('%s %s' % (family, name), 'netlink: %s' % os.strerror(error))


def list_text(run, family, name):
    """The table as `nft list table` prints it, None when there is none."""
    rc, out, err = run(['nft', 'list', 'table', family, name])
    if rc != 0:
        if NOT_FOUND in err:
            return None
        raise NftError('%s %s' % (family, name), err.strip())
    return out


def delete_commands(family, name):
    base = {'family': family, 'name': name}
    return {'nftables': [{'add': {'table': dict(base)}}, {'delete': {'table': dict(base)}}]}


def needs_update(current, chains, rules):
    return current != wanted_table(chains, rules)


# The verbs of plan_table() and plan_delete(): a change to the table itself.
TABLE_VERBS = ('set_table', 'delete_table')


def plan_table(name, current, chains, rules):
    """[Action] making table `name` ("family table") hold chains and rules;
    current is (chains, rules) as read_table() gives them, or None."""
    if current is None:
        return [Action('set_table', name, 'missing')]
    if not needs_update(wanted_table(*current), chains, rules):
        return []
    have, want = len(current[1]), len(rules)
    return [Action('set_table', name, '%d rules, want %d' % (have, want) if have != want
                   else 'rules differ from the wanted ones')]


def plan_delete(name, current):
    """[Action] removing table `name` (state absent) when it is there."""
    return [] if current is None else [Action('delete_table', name, 'state absent')]


def apply(run, commands, subject):
    rc, _, err = run(['nft', '-j', '-f', '-'], data=json.dumps(commands))
    if rc != 0:
        raise NftError(subject, 'nft refused the ruleset: %s' % err.strip())


def prefix(cidr):
    address, length = cidr.split('/')
    return {'prefix': {'addr': address, 'len': int(length)}}


def match(protocol, field, op, right):
    return {'match': {'op': op, 'left': {'payload': {'protocol': protocol, 'field': field}},
                      'right': right}}


def meta_match(key, op, right):
    """A match on packet metadata (iifname, oifname...), as nft prints it."""
    return {'match': {'op': op, 'left': {'meta': {'key': key}}, 'right': right}}


# `fib saddr . iif oif`: the interface the route back to the source leaves by,
# looked up as if leaving by the interface the packet came in on.
REVERSE_PATH = {'fib': {'result': 'oif', 'flags': ['saddr', 'iif']}}


def no_reverse_path():
    """`fib saddr . iif oif missing`: the node routes the source elsewhere
    than where the packet came in (strict reverse path, as rp_filter=1)."""
    return {'match': {'op': '==', 'left': REVERSE_PATH, 'right': False}}


DROP = {'drop': None}


# -- the table as people read it (diffs) -----------------------------------------
VERDICTS = ('accept', 'drop', 'return', 'continue')
BARE_META = ('iifname', 'oifname', 'iif', 'oif', 'mark')


# -- values as nft prints them ------------------------------------------------
def merge(intervals):
    """Sorted intervals with overlapping and adjacent ones joined."""
    merged = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _element(lo, hi, address):
    value = (lambda n: str(ipaddress.IPv4Address(n))) if address else int
    size = hi - lo + 1
    if size == 1:
        return value(lo)
    if address and size & (size - 1) == 0 and lo % size == 0:
        return {'prefix': {'addr': value(lo), 'len': 33 - size.bit_length()}}
    return {'range': [value(lo), value(hi)]}


def canonical(intervals, address):
    """nft's printing of an anonymous set of integer intervals (addresses
    or ports): a set holding a range is an interval set, which nft merges;
    one of single values keeps them apart; both list sorted; a lone element
    is printed without the set."""
    if any(lo != hi for lo, hi in intervals):
        items = merge(intervals)
    else:
        items = sorted(set(intervals))
    elements = [_element(lo, hi, address) for lo, hi in items]
    return elements[0] if len(elements) == 1 else {'set': elements}


def describe(chains, rules):
    """{chain: [header, rule, ...]} in `nft list table` syntax: what a diff
    shows instead of the JSON podnet compares."""
    found = {}
    for chain in sorted(chains, key=lambda c: c['name']):
        header = ('type %(type)s hook %(hook)s priority %(prio)s; policy %(policy)s' % chain
                  if 'hook' in chain else 'regular chain')
        found[chain['name']] = [header]
    for chain, expr in rules:
        found.setdefault(chain, []).append(' '.join(_statement(s) for s in expr))
    return found


def _statement(stmt):
    (kind, body), = stmt.items()
    if kind in VERDICTS or kind == 'masquerade':
        return kind
    if kind in ('jump', 'goto'):
        return '%s %s' % (kind, body['target'])
    if kind == 'match':
        op = {'==': '', 'in': ''}.get(body['op'], body['op'])
        left, right = _left(body['left']), _value(body['right'])
        if '&' in body['left']:
            op, right = body['op'], '%#x' % body['right']  # as nft prints a masked match
        if left.endswith('ifname'):
            right = json.dumps(body['right'])  # nft quotes interface names
        if 'fib' in body['left'] and isinstance(body['right'], bool):
            right = 'exists' if body['right'] else 'missing'
        return ' '.join(p for p in (left, op, right) if p)
    if kind == 'vmap':
        pairs = ', '.join('%s : %s' % (_value(k), _statement(v)) for k, v in body['data']['set'])
        return '%s vmap { %s }' % (_left(body['key']), pairs)
    return json.dumps(stmt, sort_keys=True)


def _left(left):
    if '&' in left:  # a masked value: meta mark & 0x8000
        value, mask = left['&']
        return '%s & %#x' % (_left(value), mask)
    if 'payload' in left:
        return '%(protocol)s %(field)s' % left['payload']
    if 'meta' in left:
        key = left['meta']['key']
        return key if key in BARE_META else 'meta ' + key
    if 'ct' in left:
        return 'ct ' + left['ct']['key']
    if 'fib' in left:  # fib saddr . iif oif
        return 'fib %s %s' % (' . '.join(left['fib']['flags']), left['fib']['result'])
    return json.dumps(left, sort_keys=True)


def _value(value):
    if isinstance(value, list):
        return ','.join(_value(v) for v in value)
    if not isinstance(value, dict):
        return str(value)
    if 'prefix' in value:
        return '%(addr)s/%(len)s' % value['prefix']
    if 'range' in value:
        return '%s-%s' % tuple(value['range'])
    if 'set' in value:
        return '{ %s }' % ', '.join(_value(v) for v in value['set'])
    return json.dumps(value, sort_keys=True)
