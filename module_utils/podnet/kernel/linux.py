"""Linux's own numbers and calls, one home for each: the namespace and
mount flags of <sched.h> and <sys/mount.h>, libc through ctypes, a checked
call and mount, and from /proc a process's parent, start time and mount points.

Standard library only: the spawner runs this file's source first, before
rawnl.py, seccomp.py and spawner.py (sandbox.SpawnerClient), so it must not
import from podnet.
"""
import ctypes
import os
import re

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 0x1, 0x2, 0x4, 0x8, 0x20
MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED = 0x1000, 0x4000, 0x40000, 0x100000
MNT_DETACH = 2
NETNS_DIR = '/run/netns'  # where `ip netns` binds named network namespaces

libc = ctypes.CDLL(None, use_errno=True)


def check(result, what):
    """Raise OSError (with errno) when a libc call returned non-zero."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))


def mount(source, target, fstype, flags, data=None):
    check(libc.mount(source and source.encode(), target.encode(),
                     fstype and fstype.encode(), flags, data and data.encode()), 'mount ' + target)


def mount_points(pid='self', proc='/proc'):
    """The paths something is mounted on in a process's mount namespace
    (empty when it is gone). A bind mount within one filesystem is one:
    os.path.ismount, which compares devices and inodes, misses it."""
    try:
        with open('%s/%s/mountinfo' % (proc, pid)) as f:
            return {re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f}
    except OSError:
        return set()


def read_stat(pid, proc='/proc'):
    """(parent pid, start time in clock ticks since boot) of a process, or
    None when it is gone. With the pid, the start time names one process
    for good: pids are reused, start times are not."""
    try:
        with open('%s/%d/stat' % (proc, pid)) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(')') + 2:].split()  # the name may hold spaces and ')'
    return int(fields[1]), int(fields[19])
