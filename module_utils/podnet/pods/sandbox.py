"""Pod sandboxes seen from the module: the spawner, network namespaces,
and processes named by (pid, start time).

A sandbox is a network namespace bound to /run/netns/cni-<id>, held by a
pause process that also holds the pod's UTS and IPC namespaces. The spawner
(a small helper process, see spawner.py) creates them; this module wires and
removes them.
"""
import collections
import ctypes
import errno
import inspect
import json
import os
import signal
import subprocess
import sys

from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.kernel import linux, rawnl, seccomp
from ansible.module_utils.podnet.kernel.linux import MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, NETNS_DIR, libc, read_stat
from ansible.module_utils.podnet.pods import spawner


class SandboxError(PodnetError):
    """A sandbox or container could not be started or removed."""


def netns_path(netns):
    return os.path.join(NETNS_DIR, netns)


class SpawnerClient:
    """The module's end of the spawner process (spawner.py), started on first
    use, for one module call.

    Requests can be pipelined: submit() several, then collect() the replies
    in order, so the spawner forks sandboxes while the module wires the
    ones already made (two processes, two cores)."""

    def __init__(self):
        self._proc = None
        self._pending = collections.deque()

    def submit(self, subject, **req):
        if self._proc is None:
            ensure_netns_dir()
            self._proc = subprocess.Popen(
                [sys.executable, '-S', '-c',
                 ''.join(inspect.getsource(m) for m in (linux, rawnl, seccomp, spawner))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._proc.stdin.write(json.dumps(req) + '\n')
        self._proc.stdin.flush()
        self._pending.append(subject)

    def collect(self):
        subject = self._pending.popleft()
        reply = json.loads(self._proc.stdout.readline() or '{"error": "spawner died"}')
        if 'error' in reply:
            raise SandboxError(subject, reply['error'])
        return Process(reply['pid'], reply['start'])

    def probe(self, subject, **req):
        """The exit code of an exec probe (spawner.TIMED_OUT past its timeout),
        with nothing pipelined before it."""
        return self._ask(subject, op='probe', **req)['status']

    def run(self, subject, **req):
        """(Process, exit code) of an init container run to its end
        (spawner.TIMED_OUT past req's timeout), with nothing pipelined before it."""
        reply = self._ask(subject, op='run', **req)
        return Process(reply['pid'], reply['start']), reply['status']

    def _ask(self, subject, **req):
        self.submit(subject, **req)
        self._pending.popleft()
        reply = json.loads(self._proc.stdout.readline() or '{"error": "spawner died"}')
        if 'error' in reply:
            raise SandboxError(subject, reply['error'])
        return reply

    def request(self, subject, **req):
        self.submit(subject, **req)
        return self.collect()

    def close(self):
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
            self._proc = None


class Process:
    """A process named for good by its pid and start time."""

    def __init__(self, pid, start):
        self.pid = pid
        self.start = start

    def as_dict(self):
        return {'pid': self.pid, 'start': self.start}

    @classmethod
    def from_dict(cls, d):
        return cls(d['pid'], d['start']) if d else None

    def alive(self):
        try:
            found = read_stat(self.pid)
        except (OSError, ValueError, IndexError):
            return False
        return found is not None and found[1] == self.start

    def kill(self):
        """SIGKILL: pause and containers are PID 1 of their PID namespace,
        where SIGTERM without a handler is ignored; the kernel then kills the
        rest of that namespace."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def ensure_netns_dir():
    """/run/netns as `ip netns add` leaves it: a mount point of its own,
    shared, so containers can drop every sandbox binding at once."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if is_mount_point(NETNS_DIR):
        return
    for source, flags in ((NETNS_DIR.encode(), MS_BIND | MS_REC), (None, MS_SHARED | MS_REC)):
        if libc.mount(source, NETNS_DIR.encode(), None, flags, None) != 0:
            raise SandboxError(NETNS_DIR, 'mount: %s' % os.strerror(ctypes.get_errno()))


def is_mount_point(path):
    """From the mount table: os.path.ismount() compares devices, and a bind
    mount of a folder onto itself is on the same device, so it says no. The
    mount seen at path is the last one made on it or on a folder above it
    (a lab node's /run hides the /run/netns it inherited)."""
    above = [path] + [os.path.dirname(path.rstrip('/'))]
    while above[-1] != '/':
        above.append(os.path.dirname(above[-1]))
    with open('/proc/self/mountinfo') as f:
        covering = [line.split()[4] for line in f if line.split()[4] in above]
    return bool(covering) and covering[-1] == path


def kill_holders(netnses):
    """SIGKILL every process inside the network namespaces bound at these
    names, found by the namespace's inode: not only the processes a record
    names (a record can be wrong, and a pod's process can fork), one pass
    over /proc for them all."""
    inodes = set()
    for netns in netnses:
        try:
            st = os.stat(netns_path(netns))
            inodes.add((st.st_dev, st.st_ino))
        except FileNotFoundError:
            continue
    if not inodes:
        return
    for entry in os.listdir('/proc'):
        try:
            if entry.isdigit():
                st = os.stat('/proc/%s/ns/net' % entry)
                if (st.st_dev, st.st_ino) in inodes:
                    os.kill(int(entry), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue


def remove_netns(netns):
    """Unbind and delete /run/netns/<netns>; a missing one is success."""
    path = netns_path(netns)
    if libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        raise SandboxError(netns, 'umount: %s' % os.strerror(ctypes.get_errno()))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def list_netns():
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith('cni-'))
    except FileNotFoundError:
        return []


def read_inside(netns):
    """What the kernel holds inside a sandbox, for the CNI-style CHECK:
    eth0 (state, MTU, MAC, the ifindex of its veth peer), its addresses
    and the gateways of its default routes. None when eth0 is gone."""
    nl = rawnl.in_netns(netns_path(netns))
    try:
        eth0 = nl.links().get('eth0')
        if eth0 is None:
            return None
        index = eth0['index']
        return {'up': bool(eth0['flags'] & rawnl.IFF_UP), 'mtu': eth0['mtu'], 'mac': eth0['mac'],
                'peer': eth0['link'],
                'addresses': sorted(a for i, a in nl.addresses() if i == index),
                'gateways': sorted(g or 'no gateway' for oif, g in nl.default_routes() if oif == index)}
    finally:
        nl.close()


def netns_inode(pid):
    """Inode of a process's network namespace, or None if it is gone."""
    try:
        return os.stat('/proc/%d/ns/net' % pid).st_ino
    except (FileNotFoundError, ProcessLookupError):
        return None
