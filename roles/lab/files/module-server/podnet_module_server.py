"""A lab node's module server: one Python that has already imported what
podnet's modules import, and forks a child for each of their runs.

A module run on a node spent 0.2 s of CPU, and most of it was the same
every time: starting Python, executing Ansible's module library (basic is
60 ms), pyroute2 (50 ms), podnet's module_utils. At 20 nodes that was most
of a converge. The first run of a podnet module on a node starts the
server with its zip and, once it listens, is its first request. Each run
hands it its AnsiballZ wrapper, standard streams, arguments, environment,
working folder and umask, and it forks a child that runs the wrapper as
the launcher would have. The server
reports the child's exit status (or the signal that killed it) to the
launcher, which relays the signals it gets to the child; a child whose
launcher goes away (its SSH session hung up) gets SIGHUP.

It runs only the code the controller sends: it preloads Ansible's basic
and loader and podnet's module_utils from a module's zip, declines a zip
whose copy of any of those differs (CRC and size) and then retires, so
that the next run starts a server with the new code; every other
`ansible.*` or `ansible_collections.*` module a child imports comes from
the child's own zip, and a preloaded one its zip lacks is forgotten. It
also retires when this Python, these scripts or the venv's packages
change, and declines a run whose environment Python reads at start-up
(PYTHON*, LANG, LC_*, TZ) differs from its own.

It listens on a socket in the node's private /run (pods cannot see it),
answers root in the node's own mount namespace only, and exits after
IDLE_SECONDS without a request. PODNET_MODULE_SERVER=0 in the node's
environment turns it off.
"""
import atexit
import base64
import binascii
import gc
import importlib
import io
import marshal
import os
import re
import select
import signal
import socket
import struct
import sys
import threading
import traceback
import zipfile
import zipimport

from podnet_module_python import (ERROR, IDLE_SECONDS, LISTENING, SERVER_DIR, SOCKET, fingerprint, recv_exact,
                                  remove_quietly, run_wrapper, startup_environment, write_private)

CHECK_SECONDS = 5  # how often an idle server checks that its socket is still its own
REQUEST_SECONDS = 10  # a launcher sends its whole request at once
ZIP_DATA = re.compile(rb"^zip_data='([A-Za-z0-9+/=]*)',?$", re.M)
PAYLOAD_SUFFIX = '_payload.zip'  # the zip an AnsiballZ wrapper writes and puts first on sys.path
# Preloaded from a zip: what every module run imports, and podnet's own.
PRELOADED = ('ansible/module_utils/basic.py', 'ansible/module_utils/_internal/_ansiballz/_loader.py')
PRELOADED_FOLDERS = ('ansible/module_utils/podnet/', 'ansible_collections/podnet/testbed/plugins/module_utils/podnet/')
# The packages a module zip holds: a child imports them from its own zip only.
ZIP_PACKAGES = ('ansible', 'ansible_collections')
# What the wrapper itself imports, besides its zip.
WRAPPER_IMPORTS = ('base64', 'datetime', 'resource', 'runpy', 'shutil', 'tempfile', 'zipfile')
STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
PEER = struct.Struct('3i')  # SO_PEERCRED: pid, uid, gid


def zip_of(wrapper):
    """The module zip an AnsiballZ wrapper carries, or None."""
    found = ZIP_DATA.search(wrapper)
    if found is None:
        return None
    try:
        return base64.b64decode(found.group(1), validate=True)
    except binascii.Error:
        return None


def entries(payload):
    """{file name: (CRC, size)} of a zip's files."""
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        return {i.filename: (i.CRC, i.file_size) for i in z.infolist()}


def module_name(file_name):
    module = file_name[:-len('.py')].replace('/', '.')
    return module[:-len('.__init__')] if module.endswith('.__init__') else module


class ZipFinder:
    """Finds the ZIP_PACKAGES and their modules in one module zip only: the
    given archive, or else (in a child) the zip this run's wrapper wrote, the
    first `*_payload.zip` on sys.path, as the import would without a
    server. A name that zip lacks is missing."""

    def __init__(self, archive=None):
        self.archive = archive

    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] not in ZIP_PACKAGES:
            return None
        archive = self.archive or next((p for p in sys.path if p.endswith(PAYLOAD_SUFFIX)), None)
        if archive is None:
            return None
        try:
            spec = zipimport.zipimporter(os.path.join(archive, *name.split('.')[:-1]) + os.sep).find_spec(name)
        except zipimport.ZipImportError:
            spec = None
        if spec is None:
            raise ModuleNotFoundError('No module named %r' % name, name=name)
        return spec


class Server:
    """The listening socket, what was preloaded and from which zips, and
    the children running: {pidfd: connection to the launcher}."""

    def __init__(self, path):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.inode = None
        self.fingerprint = fingerprint()
        self.environment = startup_environment(os.environ)
        self.known, self.tried, self.archives = {}, set(), []
        self.children, self.hung_up = {}, set()
        self.retired = False

    def learn(self, payload, files=None):
        """Preload what this zip (its entries(), if known) brings that the
        server has not tried yet."""
        files = files or entries(payload)
        wanted = {n for n in files if n in PRELOADED or n.startswith(PRELOADED_FOLDERS) and n.endswith('.py')}
        if not wanted - self.tried:
            return
        archive = os.path.join(SERVER_DIR, 'zip-%d-%d' % (os.getpid(), len(self.archives)))
        write_private(archive, payload)
        self.archives.append(archive)
        finder = ZipFinder(archive)
        sys.meta_path.insert(0, finder)
        try:
            for name in sorted(wanted - self.tried):
                self.tried.add(name)
                try:
                    importlib.import_module(module_name(name))
                except Exception:  # noqa: BLE001  (each run imports it itself, as without a server)
                    pass
        finally:
            sys.meta_path.remove(finder)
        for module in list(sys.modules.values()):
            where = getattr(module, '__file__', None) or ''
            if where.startswith(archive + os.sep):
                name = os.path.relpath(where, archive)
                self.known.setdefault(name, files[name])
        gc.freeze()  # the preloaded objects stay shared with every child, untouched by its collector

    def listen(self):
        own = '%s.%d' % (self.path, os.getpid())
        self.listener.bind(own)
        self.listener.listen(64)
        self.inode = os.stat(own).st_ino
        os.rename(own, self.path)

    def owns_socket(self):
        try:
            return os.stat(self.path).st_ino == self.inode
        except OSError:
            return False

    def retire(self):
        """Take no more requests (the next run starts a new server); the
        children running are still reported."""
        if self.owns_socket():
            os.unlink(self.path)
        self.listener.close()
        self.retired = True

    def loop(self):
        idle = 0
        while self.children or not self.retired and idle < IDLE_SECONDS:
            watched = list(self.children) + [c for c in self.children.values() if c not in self.hung_up]
            watched += [] if self.retired else [self.listener]
            ready = select.select(watched, [], [], CHECK_SECONDS)[0]
            idle = 0 if ready or self.children else idle + CHECK_SECONDS
            if not ready and not self.children and not self.owns_socket():
                return  # another server took the socket over
            for item in ready:
                if item is self.listener:
                    self.accept()
                elif isinstance(item, int):
                    self.report(item)
                else:
                    self.hang_up(item)

    def accept(self):
        conn, _ = self.listener.accept()
        if not _trusted(conn):
            conn.close()
            return
        conn.settimeout(REQUEST_SECONDS)  # a launcher that stalls mid-request is dropped
        request = _receive(conn)
        if request is None:
            conn.close()
            return
        header, fds, wrapper = request
        try:
            payload, files, missing = self.judge(header, wrapper)
            if payload is None:
                conn.sendall(b'R')
                conn.close()
                return
            pid = os.fork()
            if pid == 0:
                self.child(conn, header, fds, wrapper, missing)
            self.children[os.pidfd_open(pid)] = conn
            conn.settimeout(None)
        except OSError:
            conn.close()
            return
        finally:
            for fd in fds:
                os.close(fd)
        try:
            self.learn(payload, files)
        except OSError:
            pass  # nothing learned: later runs import those modules themselves

    def judge(self, header, wrapper):
        """(zip, its entries(), preloaded modules it lacks) when the server
        may run this request, else Nones; retires when the code changed."""
        payload = zip_of(wrapper)
        if header.get('fingerprint') != self.fingerprint:
            self.retire()
            return None, None, None
        if payload is None or startup_environment(header['env']) != self.environment:
            return None, None, None
        try:
            files = entries(payload)
        except zipfile.BadZipFile:
            return None, None, None
        if any(files.get(name, crc_size) != crc_size for name, crc_size in self.known.items()):
            self.retire()
            return None, None, None
        return payload, files, [module_name(name) for name in self.known if name not in files]

    def report(self, pidfd):
        """A child ended: its exit status (X) or the signal that ended it (K) to its launcher."""
        conn = self.children.pop(pidfd)
        self.hung_up.discard(conn)
        try:
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            if info.si_code == os.CLD_EXITED:
                conn.sendall(b'X' + info.si_status.to_bytes(4, 'big', signed=True))
            else:
                conn.sendall(b'K' + info.si_status.to_bytes(4, 'big'))
        except OSError:
            pass  # its launcher is gone
        finally:
            conn.close()
            os.close(pidfd)

    def hang_up(self, conn):
        """The launcher closed its end while its child runs: hang up the child
        (unless the child was reported in this same round)."""
        for pidfd, child_conn in self.children.items():
            if child_conn is conn:
                self.hung_up.add(conn)
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGHUP)
                except OSError:
                    pass

    def child(self, conn, header, fds, wrapper, missing):
        """Run one module as its launcher would have; never returns."""
        code, interrupted = 1, False
        try:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python
            self.listener.close()
            for pidfd, other in self.children.items():
                os.close(pidfd)
                other.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                os.close(fd)
            fds.clear()
            os.environ.clear()
            os.environ.update(header['env'])
            os.chdir(header['cwd'])
            os.umask(header['umask'])
            sys.argv = header['argv']
            for name in missing:
                sys.modules.pop(name, None)
            sys.meta_path.insert(0, ZipFinder())
            conn.sendall(b'P' + os.getpid().to_bytes(4, 'big'))
            conn.close()
            code = _run(wrapper)
        except KeyboardInterrupt:
            traceback.print_exc()
            interrupted = True
        except BaseException:  # noqa: BLE001  (reported as Python would, then the status)
            traceback.print_exc()
        finally:
            try:
                threading._shutdown()  # as at interpreter exit: wait for the module's other threads
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:  # noqa: BLE001
                pass
            if interrupted:  # as Python ends on an uncaught KeyboardInterrupt
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
            os._exit(code & 0xff)

    def close(self):
        if not self.retired:
            self.retire()
        for leftover in self.archives + ['%s.%d' % (self.path, os.getpid())]:
            remove_quietly(leftover)


def _trusted(conn):
    """Root in this server's mount namespace: a node's own launchers."""
    try:
        pid, uid, _ = PEER.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size))
        return uid == 0 and os.readlink('/proc/%d/ns/mnt' % pid) == os.readlink('/proc/self/ns/mnt')
    except OSError:
        return False


def _receive(conn):
    """(header, [stdin, stdout, stderr], wrapper) of one request, or None."""
    fds = []
    try:
        sizes, fds, _, _ = socket.recv_fds(conn, 8, 3)
        if len(sizes) == 8 and len(fds) == 3:
            header_size, wrapper_size = struct.unpack('!II', sizes)
            body = recv_exact(conn, header_size + wrapper_size)
            if len(body) == header_size + wrapper_size:
                return marshal.loads(body[:header_size]), fds, body[header_size:]
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        pass
    for fd in fds:
        os.close(fd)
    return None


def _run(wrapper):
    try:
        run_wrapper(wrapper, '<stdin>')
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _stop(signum, _frame):
    sys.exit(128 + signum)


def tell_launcher():
    """The launcher that started this server waits on its stdout, a pipe,
    for word that it listens; then stdout is /dev/null, as stdin is."""
    try:
        os.write(1, LISTENING)
    except OSError:
        pass  # that launcher is gone (stopped, or done waiting and running its module itself)
    os.dup2(0, 1)


def serve(seed):
    with open(seed, 'rb') as f:
        payload = zip_of(f.read())
    os.unlink(seed)
    if payload is None:
        return
    server = Server(os.path.join(SERVER_DIR, SOCKET))
    try:
        server.learn(payload)
        for module in WRAPPER_IMPORTS:
            importlib.import_module(module)
        server.listen()
        tell_launcher()
        for signum in STOPPING:  # stopped, it still removes its socket and zips
            signal.signal(signum, _stop)
        server.loop()
    finally:
        server.close()


def main():
    import podnet_module_python
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == here:  # the preloaded imports must not find this folder
        del sys.path[0]
    podnet_module_python.cache_compiled_code()
    try:
        serve(sys.argv[1])
    except Exception:  # noqa: BLE001  (kept for the launchers, which then start none for a while)
        with open(os.path.join(SERVER_DIR, ERROR), 'w') as f:
            f.write(traceback.format_exc())
        raise


if __name__ == '__main__':
    main()
