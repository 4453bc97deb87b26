"""nftables through `nft -j` (libnftables JSON): whole tables, atomically.

podnet owns its tables outright. A wanted table is a list of chains and
rules; it is applied as one transaction that creates, empties and refills
the table, so the kernel never sees half a ruleset. Checking costs one
`nft -j list table`: chains and rules are compared as nft prints them, with
handles dropped, so podnet writes expressions in the form nft prints.
"""
import json

from ansible.module_utils.podnet.errors import PodnetError


class NftError(PodnetError):
    """nft refused a command."""


def current_table(run, family, name):
    """(chains, rules) of the table as wanted_table() shapes them, or None."""
    rc, out, err = run(['nft', '-j', 'list', 'table', family, name])
    if rc != 0:
        if 'No such file or directory' in err or 'does not exist' in err:
            return None
        raise NftError('%s %s' % (family, name), err.strip())
    items = json.loads(out)['nftables']
    chains = [{k: v for k, v in i['chain'].items() if k not in ('family', 'table', 'handle')}
              for i in items if 'chain' in i]
    rules = [(i['rule']['chain'], i['rule']['expr']) for i in items if 'rule' in i]
    return wanted_table(chains, rules)


def wanted_table(chains, rules):
    """Canonical, comparable form of a table's chains and rules."""
    return json.dumps([sorted(chains, key=lambda c: c['name']), [list(r) for r in rules]],
                      sort_keys=True)


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


def delete_commands(family, name):
    base = {'family': family, 'name': name}
    return {'nftables': [{'add': {'table': dict(base)}}, {'delete': {'table': dict(base)}}]}


def needs_update(current, chains, rules):
    return current != wanted_table(chains, rules)


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
