"""The cluster-wide run lock, on the controller: one ansible-playbook at a
time per lab (or inventory).

The holder is the ansible-playbook process itself, not the module that
takes the lock: the module ends after one task, the playbook run it speaks
for goes on. The lock file records the holder's pid and start time (clock
ticks since boot, from /proc/<pid>/stat, so a reused pid is not taken for
the holder); it is held while that process lives and never needs a
release: a run that ends, or crashes, frees it. A short flock on the file
makes checking and taking it one step between concurrent takers.
"""
import collections
import fcntl
import os
import time

from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.kernel.linux import read_stat

PROGRAM = 'ansible-playbook'
Holder = collections.namedtuple('Holder', 'pid start')


class RunLockError(PodnetError):
    """Another ansible-playbook holds the lab's run lock."""


# -- /proc, read through functions handed in so that the logic is pure -------
def read_cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


def runs_playbook(argv):
    return any(os.path.basename(a) == PROGRAM for a in argv[:3])


def playbook_process(pid, cmdline=read_cmdline, stat=read_stat):
    """The ansible-playbook run a process belongs to: the outermost of the
    consecutive ancestors whose command is ansible-playbook (its workers are
    forks with the same command line), as a Holder; None outside one."""
    found = None
    while pid > 1:
        info = stat(pid)
        if info is None:
            break
        if runs_playbook(cmdline(pid)):
            found = Holder(pid, info[1])
        elif found:
            break
        pid = info[0]
    return found


def alive(holder, cmdline=read_cmdline, stat=read_stat):
    """Whether the recorded holder still runs: same pid, same start time,
    still ansible-playbook."""
    info = stat(holder.pid)
    return info is not None and info[1] == holder.start and runs_playbook(cmdline(holder.pid))


def parse(text):
    """The Holder recorded in a lock file's text, or None."""
    try:
        pid, start = text.split()[:2]
        return Holder(int(pid), int(start))
    except ValueError:
        return None


# -- taking the lock ------------------------------------------------------------
def try_take(path, me, is_alive=alive):
    """Take the lock for `me` unless a live other holds it; return the
    holder that keeps it, or None when `me` holds it now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        holder = parse(os.pread(fd, 64, 0).decode(errors='replace'))
        if holder is not None and holder != me and is_alive(holder):
            return holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, b'%d %d\n' % me, 0)
        return None
    finally:
        os.close(fd)  # drops the flock


def take(path, me, timeout, is_alive=alive, sleep=time.sleep, clock=time.monotonic):
    """Wait up to timeout seconds for the lock; return (waited seconds, the
    holder waited for or None); raise RunLockError naming the holder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    start, first = clock(), None
    while True:
        holder = try_take(path, me, is_alive)
        if holder is None:
            return clock() - start, first
        first = first or holder
        if clock() - start >= timeout:
            raise RunLockError(path, 'another ansible-playbook (pid %d: %s) has held this lab '
                               'for over %d s; wait for it to finish, or stop it' % (
                                   holder.pid, ' '.join(read_cmdline(holder.pid)) or '?', timeout))
        sleep(1)


def lock_path(lock_dir, name):
    """The lock file of one lab or inventory: `<lock_dir>/run-<name>.lock`."""
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)
    if not safe.strip('.'):
        raise PodnetError('name', 'a lock name needs a letter or digit: %r' % name)
    return os.path.join(lock_dir, 'run-%s.lock' % safe)
