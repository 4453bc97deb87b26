"""nftables through `nft -j` (libnftables JSON): whole tables, atomically.

podnet owns its tables outright. A wanted table is a list of chains and
rules; it is applied as one transaction that creates, empties and refills
the table, so the kernel never sees half a ruleset. The table's comment
carries a digest of what was applied: a table whose digest and rule count
match is unchanged, so checking costs one `nft -j list table`.
"""
import hashlib
import json

from ansible.module_utils.podnet.errors import PodnetError


class NftError(PodnetError):
    """nft refused a command."""


def digest(chains, rules):
    text = json.dumps([chains, rules], sort_keys=True)
    return 'podnet:' + hashlib.sha256(text.encode()).hexdigest()[:16]


def current_table(run, family, name):
    """(comment, rule count) of the table, or None if it does not exist."""
    rc, out, err = run(['nft', '-j', 'list', 'table', family, name])
    if rc != 0:
        if 'No such file or directory' in err or 'does not exist' in err:
            return None
        raise NftError('%s %s' % (family, name), err.strip())
    items = json.loads(out)['nftables']
    table = next(i['table'] for i in items if 'table' in i)
    return table.get('comment'), sum(1 for i in items if 'rule' in i)


def table_commands(family, name, chains, rules):
    """One transaction: ensure, delete, recreate with chains and rules.

    chains: [{name, type, hook, prio, policy}]; rules: [(chain, [expr...])].
    """
    base = {'family': family, 'name': name}
    cmds = [{'add': {'table': dict(base)}}, {'delete': {'table': dict(base)}},
            {'add': {'table': dict(base, comment=digest(chains, rules))}}]
    for chain in chains:
        cmds.append({'add': {'chain': dict(chain, family=family, table=name)}})
    for chain, expr in rules:
        cmds.append({'add': {'rule': {'family': family, 'table': name, 'chain': chain,
                                      'expr': expr}}})
    return {'nftables': cmds}


def delete_commands(family, name):
    base = {'family': family, 'name': name}
    return {'nftables': [{'add': {'table': dict(base)}}, {'delete': {'table': dict(base)}}]}


def needs_update(current, chains, rules):
    return current is None or current != (digest(chains, rules), len(rules))


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
