"""Pod sandboxes seen from the module: the spawner, network namespaces,
and processes named by (pid, start time).

A sandbox is a network namespace bound to /run/netns/cni-<id>, held by a
pause process that also holds the pod's UTS and IPC namespaces. The spawner
(a small helper process, see spawner.py) creates them; this module wires and
removes them.
"""
import ctypes
import inspect
import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

from ansible.module_utils.podnet import spawner
from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.netlink import IPRoute

NETNS_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(PodnetError):
    """A sandbox or container could not be started or removed."""


def netns_path(netns):
    return os.path.join(NETNS_DIR, netns)


class Spawner:
    """The spawner process, started on first use, for one module call."""

    def __init__(self):
        self._proc = None

    def request(self, subject, **req):
        if self._proc is None:
            os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
            self._proc = subprocess.Popen(
                [sys.executable, '-S', '-c', inspect.getsource(spawner)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._proc.stdin.write(json.dumps(req) + '\n')
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline() or '{"error": "spawner died"}')
        if 'error' in reply:
            raise SandboxError(subject, reply['error'])
        return Process(reply['pid'], reply['start'])

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
            return spawner.start_time(self.pid) == self.start
        except (OSError, ValueError, IndexError):
            return False

    def kill(self):
        """SIGKILL: pause and containers are PID 1 of their PID namespace,
        where SIGTERM without a handler is ignored; the kernel then kills the
        rest of that namespace."""
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def pod_rtnl(netns):
    """An RTNL socket inside a pod's namespace: setns, open, setns back.
    (pyroute2's own netns= forks a child per socket, ten times slower.)"""
    own = os.open('/proc/self/ns/net', os.O_RDONLY)
    target = os.open(netns_path(netns), os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise SandboxError(netns, 'cannot enter: %s' % os.strerror(ctypes.get_errno()))
        try:
            ipr = IPRoute()
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise SandboxError(netns, 'cannot leave: %s' % os.strerror(ctypes.get_errno()))
    finally:
        os.close(own)
        os.close(target)
    try:
        yield ipr
    finally:
        ipr.close()


def remove_netns(netns):
    """Unbind and delete /run/netns/<netns>; a missing one is success."""
    path = netns_path(netns)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (22, 2):
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
