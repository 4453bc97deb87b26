"""podnet-cni's resident half: one process per node that has imported the
plugin once and answers each runtime call over a unix socket, as Cilium's
and Calico's CNI shims hand theirs to a daemon.

Why: a runtime execs a plugin per ADD and DEL. The reference bridge plugin
(Go) takes about 13 ms an ADD on this machine; a Python interpreter alone
takes 8 ms to start (`-I -S`) and 40 more to import what the verbs use, so
no plugin exec'd as Python can come near half the reference
(bench/cni_bench.py). The executable the runtime execs
(roles/cni/files/podnet-cni) is therefore a shim of a few lines that
connects here, and only when no server answers runs `direct()`, which
serves the call in its own interpreter and then starts the server.

Protocol, one call per connection: the shim sends the length of its
environment (4 bytes, big-endian), the environment as `NAME=VALUE`
entries each ended by a NUL, with CODE_VARIABLE among them (the folder of
the podnet code the shim would run itself), then stdin as it came, and
shuts its side; the server answers `<exit status>\\n` and what the plugin
prints, or `retry\\n` (the shim then runs direct()).

Safety: the socket is in the node's private /run/podnet (mode 0700), as
the module server's; only root in the server's own mount namespace is
answered (a caller elsewhere sees other /run/netns paths: told to retry,
it runs direct). The server answers `retry` and retires when a file it
runs from changes, or when the shim calling it runs other code than its
own (another install of podnet: the tree's, a collection's; the node's
plugin was re-pointed), and exits after IDLE_SECONDS without a call.
PODNET_CNI_SERVER=0 in the caller's environment keeps every call direct.
"""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

from ansible.module_utils.podnet.cni.spec import CniError
from ansible.module_utils.podnet.cniplugin import verbs, wiring
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.kernel import rawnl

RUN_DIR = '/run/podnet'
SOCKET = RUN_DIR + '/cni.sock'
LOCK = RUN_DIR + '/cni.lock'
IDLE_SECONDS = 300
REQUEST_SECONDS = 10  # a shim sends its whole call at once
WAKE_SECONDS = 0.5  # a retired server's accept() is not woken by shutdown(): it looks this often
RETRY = b'retry\n'
PEER = struct.Struct('3i')  # SO_PEERCRED: pid, uid, gid
CODE_VARIABLE = 'PODNET_CNI_CODE'
# The name podnet's package is imported by here (the tree's, or the
# collection's: launch.py), and the folder that holds it.
PODNET = __name__.rpartition('.cniplugin.')[0]
CODE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'launch.py')


def direct(env=None, stdin=None, start=True):
    """Serve one call in this interpreter (print, return the exit status);
    then, unless the caller said PODNET_CNI_SERVER=0, start the server."""
    env = dict(os.environ) if env is None else env
    out, status = verbs.handle(env, sys.stdin.buffer.read() if stdin is None else stdin)
    sys.stdout.write(out)
    sys.stdout.flush()
    if start and env.get('PODNET_CNI_SERVER', '1') != '0' and not _answering():
        spawn()
    return status


def _answering():
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(SOCKET)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def spawn():
    """Start the server, detached (own session, no streams), and return."""
    subprocess.Popen([sys.executable, '-I', '-S', LAUNCHER, 'serve'], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                     close_fds=True, cwd='/')


class Server:
    """The listening socket, held under an exclusive lock on LOCK, and the
    files whose change retires it."""

    def __init__(self):
        self.files = _own_files()  # before it listens: a change from then on retires it
        self.code = _folder_id(CODE)
        os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
        self.lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        import fcntl
        fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: another server holds it
        if os.path.exists(SOCKET):
            os.unlink(SOCKET)  # a dead server's: the lock says none lives
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(SOCKET)
        finally:
            os.umask(old)
        self.bound = os.stat(SOCKET).st_ino  # the name's inode: a later server's has another
        self.sock.listen(64)
        self.sock.settimeout(WAKE_SECONDS)
        self.mount_ns = os.stat('/proc/self/ns/mnt').st_ino
        self.housekeeping = Background()
        self.retired = False

    def loop(self):
        idle_until = time.monotonic() + IDLE_SECONDS
        while not self.retired and time.monotonic() < idle_until:
            try:
                conn = self.sock.accept()[0]
            except socket.timeout:
                continue  # a look at retired and the idle time, each WAKE_SECONDS
            except OSError:
                break
            idle_until = time.monotonic() + IDLE_SECONDS
            self.answer(conn)  # in turn: a call is milliseconds, and a thread per call cost 1 ms more each
        self.retire()
        self.housekeeping.settle()
        self.sock.close()

    def retire(self):
        """Stop answering: the socket's name goes (if it is still ours), the
        lock too (a new server may start while this one finishes its
        removals); the main thread's loop ends within WAKE_SECONDS."""
        if self.retired:
            return
        self.retired = True
        try:
            if os.stat(SOCKET).st_ino == self.bound:
                os.unlink(SOCKET)
        except OSError:
            pass
        os.close(self.lock)

    def answer(self, conn):
        with conn:
            conn.settimeout(REQUEST_SECONDS)
            try:
                request = _read_all(conn)  # whole, even to decline it: the shim is not cut off mid-write
                if not self._trusted(conn) or self._changed():
                    conn.sendall(RETRY)
                    return
                env, stdin = parse(request)
                if self._other_code(env.pop(CODE_VARIABLE, '')):
                    conn.sendall(RETRY)
                    return
                home = rawnl.Rtnl()
                try:
                    out, status = verbs.handle(env, stdin, home, self.housekeeping)
                finally:
                    home.close()
                conn.sendall(b'%d\n' % status + out.encode())
            except (OSError, ValueError):
                return

    def _trusted(self, conn):
        pid, uid = PEER.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size))[:2]
        try:
            return uid == os.getuid() and os.stat('/proc/%d/ns/mnt' % pid).st_ino == self.mount_ns
        except OSError:
            return False

    def _changed(self):
        if _fingerprint(self.files) != self.files:
            self.retire()
            return True
        return False

    def _other_code(self, code):
        """Whether the calling shim would run another copy of podnet than
        this server's (the node's plugin now links to another install: a
        collection's, the tree's): this one retires, so that the next
        server runs the code the plugin names. A shim that sends no folder
        (one from before CODE_VARIABLE) counts as another."""
        found = _folder_id(code)
        if found is None or found != self.code:
            self.retire()
            return True
        return False


class Background(wiring.Housekeeping):
    """A DEL answered once the attachment is cut off: the host end down
    (the container end loses its carrier: nothing passes), the address
    freed. Unregistering the pair waits for an RCU grace period in the
    kernel (16 ms here, most of a DEL), so a thread does it after the
    answer; an ADD or CHECK of the same attachment, and the server's exit,
    wait for it. An ADD's source guard refresh (guard.py: an nft run, on
    nodes that have the guard) also runs after the answer: the
    container's first packets may be dropped until it is done."""

    def __init__(self):
        self.pending = {}
        self.lock = threading.Lock()
        self.wanted = self.refresher = None

    def remove(self, home, veth):
        self.settle(veth)
        try:
            home.set_link(ifname=veth, up=False)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV: gone already
                return
            raise
        worker = threading.Thread(target=self._delete, args=(veth,))
        with self.lock:
            self.pending[veth] = worker
        worker.start()

    def _delete(self, veth):
        nl = rawnl.Rtnl()
        try:
            wiring.detach(nl, veth)
        except CniError:
            pass  # GC of the attachment's address, or a pods run, finds it later
        finally:
            nl.close()
            with self.lock:
                self.pending.pop(veth, None)

    def guard(self, refresh):
        """After the answer, in one thread at a time: refreshes asked for
        while one runs are done once more after it (a refresh reads every
        attachment, so one run serves them all)."""
        with self.lock:
            self.wanted = refresh
            if self.refresher is None:
                self.refresher = threading.Thread(target=self._refresh)
                self.refresher.start()

    def _refresh(self):
        while True:
            with self.lock:
                refresh, self.wanted = self.wanted, None
                if refresh is None:
                    self.refresher = None
                    return
            try:
                refresh()
            except (CniError, PodnetError, OSError):
                pass  # the pods module's next run renders the guard again

    def settle(self, veth=None):
        with self.lock:
            workers = [self.pending.get(veth)] if veth else list(self.pending.values()) + [self.refresher]
        for worker in workers:
            if worker is not None:
                worker.join()


def serve():
    try:
        server = Server()
    except OSError:
        return  # another server holds the lock: it answers
    server.loop()


def parse(data):
    """(environment, stdin bytes) of a request."""
    if len(data) < 4:
        raise ValueError('no environment length')
    length = struct.unpack_from('>I', data)[0]
    if len(data) < 4 + length:
        raise ValueError('environment cut short')
    head = data[4:4 + length]
    env = dict(entry.decode().split('=', 1) for entry in head.split(b'\0') if b'=' in entry)
    return env, data[4 + length:]


def _read_all(conn):
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def _own_files():
    """{path: (mtime, size)} of podnet's files this process runs from."""
    return _fingerprint({getattr(m, '__file__', None): None for name, m in list(sys.modules.items())
                         if name.startswith(PODNET)})


def _folder_id(path):
    """(device, inode) of a folder, the same whatever path names it; None
    if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _fingerprint(files):
    found = {}
    for path in files:
        if path:
            try:
                st = os.stat(path)
                found[path] = (st.st_mtime_ns, st.st_size)
            except OSError:
                found[path] = None
    return found
