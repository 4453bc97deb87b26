"""A node's state files, written in one way: atomically, and under a lock.

Every file podnet keeps on a node (pod records, IPAM, the pod CIDR) is
written to a private temporary file in the same folder and renamed over the
target, so a killed writer leaves the old or the new content, never half
of one, and two writers never share a temporary name. (No fsync: a lab's
state does not outlive the machine's power, and a VM's pods do not either.) `node_lock` serialises the
runs that change one node: a second run waits, then fails naming the holder.
"""
import errno
import fcntl
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager

from ansible.module_utils.podnet.core.errors import PodnetError

LOCK_FILE = 'lock'
LOCK_WAIT = 300  # seconds a run waits for another run on the same node
EMPTY = 'empty'
UNREADABLE = '<unreadable: '


class LockError(PodnetError):
    """Another podnet run holds the node's lock."""


def read_text(path):
    """A state file's text; None when there is no such file (or no path).
    A file that holds no text (a folder, bytes that are not UTF-8) reads as
    a placeholder saying so, which equals nothing podnet writes: a run
    replaces it, a reset removes it."""
    if not path:
        return None
    text, problem = read_checked(path)
    if problem == EMPTY:
        return ''
    return unreadable(problem) if problem else text


def unreadable(problem):
    """What a state file that cannot be read stands for in a plan's current
    state: text saying why, which equals nothing podnet writes."""
    return UNREADABLE + problem + '>'


def is_unreadable(value):
    return isinstance(value, str) and value.startswith(UNREADABLE)


def read_checked(path, parse=None):
    """(value, problem) of a state file: (None, None) when there is none,
    (None, why) when it is not what podnet writes there (a folder, text
    that is not UTF-8, an empty file, or what parse refuses with ValueError,
    TypeError or KeyError), else (parse(text) or the text, None).

    Any state file can be wrong (a full disk, a hand edit, a bad restore):
    the node must still heal, so a reader reports why, and the run that
    follows replaces the file from what it knows."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, 'a folder, not a file'
    except UnicodeDecodeError:
        return None, 'not UTF-8 text'
    if not text.strip():
        return None, EMPTY
    try:
        return (parse(text) if parse else text), None
    except (ValueError, TypeError, KeyError) as exc:
        return None, str(exc) or type(exc).__name__


def remove_any(path):
    """Remove what is at path, a file or a folder (a state file someone
    replaced by one); nothing there is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        remove_tree(path)
    else:
        _unlink(path)


def remove_tree(path):
    """Remove a folder whatever it holds, or fail naming it. A pod's folder
    holds what its containers made, as deep as they liked: Python's rmtree
    runs out of file descriptors (or, before 3.12, recursion) there, and
    rm does not. Never across into another filesystem; nothing there is fine."""
    if not os.path.lexists(path):
        return
    done = subprocess.run(['rm', '-rf', '--one-file-system', '--', path], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or os.path.lexists(path):
        raise PodnetError(path, 'cannot remove: %s' % (done.stderr.strip() or 'it is still there'))


def write_atomic(path, text, mode=0o644):
    """Replace path with text in one rename."""
    tmp = _written_aside(path, text, mode)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)  # rename(2) cannot replace a folder with a file
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def create_exclusive(path, text):
    """Write path only if it does not exist; False if it does. The content
    is complete before the name appears (link(2) fails on an existing name)."""
    tmp = _written_aside(path, text, 0o644)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        _unlink(tmp)


def _written_aside(path, text, mode):
    """A private temporary file beside path holding text."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, mode)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def node_lock(state_dir, wait=LOCK_WAIT, create=True):
    """Hold <state_dir>/lock (flock) for the body; the kernel drops it when
    the holder dies, so a crashed run never leaves the node locked. Yields
    None, or why the lock path had to be (or, with create False, has to be)
    replaced: a folder where the lock file belongs.

    create=False (a reset, a check) takes the lock only where a run left one:
    a reset of a clean node, or its check, must not leave a lock file there,
    and a check changes nothing: it locks such a folder as it is (flock works
    on a folder too)."""
    path = os.path.join(state_dir, LOCK_FILE)
    replaced = None
    if os.path.isdir(path) and not os.path.islink(path):
        replaced = 'a folder where the lock file belongs'
        if create:
            remove_tree(path)
    if create:
        os.makedirs(state_dir, exist_ok=True)
    try:
        is_folder = os.path.isdir(path)
        fd = os.open(path, os.O_RDONLY if is_folder else os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        yield replaced
        return
    try:
        _acquire(fd, path, wait)
        if not is_folder:
            os.ftruncate(fd, 0)
            os.write(fd, b'%d\n' % os.getpid())
        yield replaced
    finally:
        os.close(fd)


def _acquire(fd, path, wait):
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            holder = os.pread(fd, 32, 0).decode(errors='replace').strip() or 'unknown'
            raise LockError(path, 'another podnet run (pid %s) has held this node for over %d s; '
                            'wait for it, or stop it' % (holder, wait))
        time.sleep(0.1)
