"""Linux capabilities by name, and the set a container keeps.

NUMBERS is the one table of capability names (without CAP_) and their bit
numbers, as in linux/capability.h up to CAP_LAST_CAP (CHECKPOINT_RESTORE,
40): the controller plans with names, the node maps them to bits.
keeps() applies a container's securityContext to the container runtime's
default set with containerd's rules, so a manifest gets what it would get on
a real cluster.
"""
NAMES = ('CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID',
         'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST',
         'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO',
         'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
         'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE',
         'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM',
         'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE')
NUMBERS = {name: number for number, name in enumerate(NAMES)}
ALL = 'ALL'  # in add or drop: every capability, as Kubernetes allows

# What Docker and containerd give a container that asks for nothing.
RUNTIME_DEFAULT = frozenset((
    'CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID',
    'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'))


def canonical(text):
    """`NET_ADMIN` for `net_admin`, `CAP_NET_ADMIN` or `NET_ADMIN`; ALL stays
    ALL; None for anything that is not a Linux capability."""
    if not isinstance(text, str):
        return None
    upper = text.upper()
    upper = upper[len('CAP_'):] if upper.startswith('CAP_') else upper
    return upper if upper in NUMBERS or upper == ALL else None


def keeps(privileged=False, add=(), drop=()):
    """Sorted names of the capabilities a container keeps: every one when
    privileged (add and drop then change nothing), else the runtime default
    set with containerd's order: add ALL, drop ALL, add each, drop each (so
    `drop: [ALL]` with `add: [NET_BIND_SERVICE]` keeps that one, and a name
    in both lists is dropped). add and drop hold canonical names."""
    if privileged:
        return sorted(NAMES)
    kept = set(RUNTIME_DEFAULT)
    if ALL in add:
        kept = set(NAMES)
    if ALL in drop:
        kept = set()
    kept |= set(add) - {ALL}
    kept -= set(drop)
    return sorted(kept)
