"""A lab node's module server: one Python that has already imported what
modules import, and forks a child for each module run.

A module run on a node spent 0.2 s of CPU, and most of it was the same
every time: starting Python, executing Ansible's module_utils (basic is
60 ms), pyroute2 (50 ms), podnet's module_utils. At 20 nodes that is most
of a converge. The first run on a node starts the server with its zip; the
next runs hand it their AnsiballZ wrapper, standard streams, arguments,
environment, working folder and umask, and it forks a child that runs the
wrapper as the launcher would have. The server listens on a socket in the
node's private /run (pods cannot see it), only for root, and exits after
IDLE_SECONDS without a request.

The preloaded code must be the code the controller sends: the server
declines any zip whose copy of a file it imported differs (CRC and size),
and retires, so that the next run starts a server with the new code;
everything else of `ansible.*` a child imports comes from its own zip.
A child's exit status goes back to the launcher, which relays signals to
the child; a child whose launcher goes away (the SSH session hung up)
gets SIGHUP.

PODNET_MODULE_SERVER=0 in a node's environment turns the server off.
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

from podnet_module_python import ERROR, IDLE_SECONDS, SERVER_DIR, SOCKET, recv_exact

CHECK_SECONDS = 5  # how often an idle server checks that its socket is still its own
ZIP_DATA = re.compile(rb"^zip_data='([A-Za-z0-9+/=]*)',?$", re.M)
PAYLOAD_SUFFIX = '_payload.zip'  # the zip an AnsiballZ wrapper writes and puts first on sys.path
STOPPING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# What the wrapper itself imports, besides the module_utils in its zip.
WRAPPER_IMPORTS = ('base64', 'datetime', 'resource', 'runpy', 'shutil', 'tempfile', 'zipfile')


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


class ZipFinder:
    """Finds `ansible` and its modules in one module zip only: the given archive,
    or else (in a child) the zip this run's wrapper wrote, the first
    `*_payload.zip` on sys.path, as the import would without a server. A
    name that zip lacks is missing."""

    def __init__(self, archive=None):
        self.archive = archive

    def find_spec(self, name, path=None, target=None):
        if name != 'ansible' and not name.startswith('ansible.'):
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


def preload(archive, known, tried):
    """Import the module_utils files of the zip at archive that were not
    tried yet; add what was imported from it to known ({file name: (CRC,
    size)}). A file that does not import here is left to each run."""
    with open(archive, 'rb') as f:
        files = entries(f.read())
    finder = ZipFinder(archive)
    sys.meta_path.insert(0, finder)
    try:
        for name in sorted(set(files) - tried):
            tried.add(name)
            if name.startswith('ansible/module_utils/') and name.endswith('.py'):
                module = name[:-len('.py')].replace('/', '.')
                try:
                    importlib.import_module(module[:-len('.__init__')] if module.endswith('.__init__') else module)
                except Exception:  # noqa: BLE001  (each run imports it itself, as without a server)
                    pass
    finally:
        sys.meta_path.remove(finder)
    for module in list(sys.modules.values()):
        where = getattr(module, '__file__', None) or ''
        if where.startswith(archive + os.sep):
            known.setdefault(os.path.relpath(where, archive), files[os.path.relpath(where, archive)])


def compatible(payload, known):
    """Whether every file the server imported is, in this zip, the same
    file (or not there)."""
    try:
        files = entries(payload)
    except zipfile.BadZipFile:
        return False
    return all(files.get(name, crc_size) == crc_size for name, crc_size in known.items())


def serve(seed):
    with open(seed, 'rb') as f:
        payload = zip_of(f.read())
    os.unlink(seed)
    if payload is None:
        return
    path = os.path.join(SERVER_DIR, SOCKET)
    server = Server(path)
    try:
        server.learn(payload)
        for module in WRAPPER_IMPORTS:
            importlib.import_module(module)
        server.listen()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
        for signum in STOPPING:  # stopped, it still removes its socket and zips
            signal.signal(signum, _stop)
        server.loop()
    finally:
        server.close()


class Server:
    """The listening socket, what was preloaded, and the zips it came from."""

    def __init__(self, path):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.inode = None
        self.known, self.tried, self.archives = {}, set(), []

    def learn(self, payload):
        """Preload the module_utils of this zip the server has not tried yet."""
        if not {n for n in entries(payload) if n.startswith('ansible/module_utils/')} - self.tried:
            return
        archive = os.path.join(SERVER_DIR, 'zip-%d-%d' % (os.getpid(), len(self.archives)))
        with open(os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as f:
            f.write(payload)
        self.archives.append(archive)
        preload(archive, self.known, self.tried)
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

    def loop(self):
        idle = 0
        while idle < IDLE_SECONDS:
            if not select.select([self.listener], [], [], CHECK_SECONDS)[0]:
                idle += CHECK_SECONDS
                if not self.owns_socket():
                    return  # another server took the socket over
                continue
            idle = 0
            conn, _ = self.listener.accept()
            with conn:
                if not self.answer(conn):
                    return

    def answer(self, conn):
        """Fork a child for one request; False when the server must retire
        (the request's code is not the code it preloaded)."""
        request = _receive(conn)
        if request is None:
            return True
        header, fds, wrapper = request
        try:
            payload = zip_of(wrapper)
            if payload is None or not compatible(payload, self.known):
                conn.sendall(b'R')
                return payload is None  # new code: the next run starts a server with it
            if os.fork() == 0:
                _child(conn, self.listener, header, fds, wrapper)
        finally:
            for fd in fds:
                os.close(fd)
        self.learn(payload)
        return True

    def close(self):
        self.listener.close()
        if self.owns_socket():
            os.unlink(self.path)
        for leftover in self.archives + ['%s.%d' % (self.path, os.getpid())]:
            try:
                os.unlink(leftover)
            except OSError:
                pass


def _stop(signum, _frame):
    sys.exit(128 + signum)


def _receive(conn):
    """(header, [stdin, stdout, stderr], wrapper) of one request, or None."""
    try:
        sizes, fds, _, _ = socket.recv_fds(conn, 8, 3)
        if len(sizes) != 8 or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return None
        header_size, wrapper_size = struct.unpack('!II', sizes)
        body = recv_exact(conn, header_size + wrapper_size)
        return marshal.loads(body[:header_size]), fds, body[header_size:]
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        return None


def _child(conn, listener, header, fds, wrapper):
    """Run one module as its launcher would have, report its exit status; never returns."""
    code = 1
    try:
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python
        listener.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.environ.clear()
        os.environ.update(header['env'])
        try:
            os.chdir(header['cwd'])
        except OSError:
            os.chdir('/')
        os.umask(header['umask'])
        sys.argv = header['argv']
        sys.meta_path.insert(0, ZipFinder())
        conn.sendall(b'P' + os.getpid().to_bytes(4, 'big'))
        threading.Thread(target=_hang_up_without, args=(conn,), daemon=True).start()
        code = _run(wrapper)
    except BaseException:  # noqa: BLE001  (reported as Python would, then the status)
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(b'X' + code.to_bytes(4, 'big', signed=True))
        except BaseException:  # noqa: BLE001
            pass
        os._exit(code & 0xff)


def _run(wrapper):
    from podnet_module_python import run_wrapper
    try:
        run_wrapper(wrapper, '<stdin>')
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


def _hang_up_without(conn):
    """The launcher closed its end (its SSH session went): hang up as it would have."""
    try:
        conn.recv(1)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGHUP)


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
