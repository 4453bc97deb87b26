"""Kernel parameters of the namespace the caller runs in (a node).

/proc/sys/net shows the network namespace of the process that opens it, so
a module running on a node sets that node's values and never the
controller's. Values are compared as the kernel prints them.
"""
import os

PROC_SYS = '/proc/sys'


def _path(key):
    return os.path.join(PROC_SYS, *key.split('.'))


def read(keys):
    """{key: value as text} for every key; a missing key raises KeyError."""
    found = {}
    for key in keys:
        try:
            with open(_path(key)) as f:
                found[key] = ' '.join(f.read().split())
        except FileNotFoundError:
            raise KeyError(key) from None
    return found


def plan(current, wanted):
    """{key: value} of the wanted values that differ from the current ones."""
    return {k: str(v) for k, v in wanted.items() if current.get(k) != str(v)}


def write(changes):
    for key, value in changes.items():
        with open(_path(key), 'w') as f:
            f.write(value)


def persist_text(wanted):
    lines = ['# Managed by podnet: the pod network needs these on every node.']
    lines += ['%s = %s' % (k, v) for k, v in sorted(wanted.items())]
    return '\n'.join(lines) + '\n'
