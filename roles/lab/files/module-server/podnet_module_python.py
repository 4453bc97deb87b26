"""The Python lab nodes run Ansible modules with: the project venv's Python,
with a cache of the code it compiles from the module's zip.

Ansible sends a module as one zip (AnsiballZ) that Python imports from with
zipimport, which, unlike an ordinary import, keeps no compiled code: every
module run compiled ansible.module_utils.basic and podnet's module_utils
again, 40% of a module run and the largest cost of a converge at scale.
Here each source compiled is kept once, by its content's hash, under the
node's own home (not visible to pods), and loaded from there next time; a
code object carries the path of the zip it runs from. Nothing else changes:
the same wrapper runs the same module code.

A pipelined run (the wrapper on stdin) goes to the node's module server
(podnet_module_server.py): the server has imported what modules import and
forks a child per run. When none listens, the run starts one and waits for
it to listen (it makes the imports the run would have made itself), up to
START_WAIT_SECONDS, then runs here.
PODNET_MODULE_SERVER=0 in the node's environment runs every module here.

usage (through podnet-module-python, the lab's ansible_python_interpreter):
  .venv/bin/python podnet_module_python.py [AnsiballZ_module.py]   (else the wrapper on stdin)
"""
import marshal
import os
import select
import signal
import socket
import struct
import sys
import time
import types
import zipimport

CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'podnet-modules')
# The module server: its socket and files in the node's private /run.
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'podnet_module_server.py')
SERVER_DIR = os.environ.get('PODNET_MODULE_SERVER_DIR', '/run/podnet/module-server')
SOCKET = 'socket'
ERROR = 'error'  # why the last server failed to start
IDLE_SECONDS = 300  # a server with no request for this long exits
RELAYED = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)
STARTED_SECONDS = 30  # for a server to take a request (it may be importing a new zip's code)
START_WAIT_SECONDS = 10  # for a new server to listen; after that this run goes on by itself
LISTENING = b'L'  # what a new server writes to its stdout, a pipe to its launcher, once it listens
# The server runs podnet's modules only: code this project tests with it,
# from the tree (library/) or from the collection podnet.testbed.
SERVED_MODULES = (b"\nmodule_fqn='ansible.legacy.podnet_",
                  b"\nmodule_fqn='ansible_collections.podnet.testbed.plugins.modules.podnet_")


def _relocated(code, filename):
    """code, and every code object within it, as compiled from filename."""
    consts = tuple(_relocated(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile(compile_source):
    import hashlib
    import importlib.util

    def compile_or_load(pathname, source):
        key = hashlib.sha256(importlib.util.MAGIC_NUMBER + b'%d' % sys.flags.optimize
                             + source).hexdigest()
        path = os.path.join(CACHE, key)
        try:
            with open(path, 'rb') as f:
                code = marshal.load(f)
            if isinstance(code, types.CodeType):
                return _relocated(code, pathname)
        except (OSError, EOFError, ValueError, TypeError):
            pass  # not there, or not code: compiled again and written anew
        code = compile_source(pathname, source)
        try:
            os.makedirs(CACHE, mode=0o700, exist_ok=True)
            aside = '%s.%d' % (path, os.getpid())
            with open(aside, 'wb') as f:
                marshal.dump(code, f)
            os.replace(aside, path)
        except OSError:
            pass  # no cache: the module still runs, as it would without one
        return code
    return compile_or_load


def cache_compiled_code():
    if hasattr(zipimport, '_compile_source'):
        zipimport._compile_source = _cached_compile(zipimport._compile_source)


def run_wrapper(wrapper, name):
    """Run an AnsiballZ wrapper as the script `name` (its file, or <stdin>)."""
    main_module = types.ModuleType('__main__')
    if name != '<stdin>':
        main_module.__file__ = name
    sys.modules['__main__'] = main_module
    exec(compile(wrapper, name, 'exec'), main_module.__dict__)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == here:  # the module's imports must not find this folder
        del sys.path[0]
    if len(sys.argv) > 1:  # a wrapper file (no pipelining): it becomes argv[0]
        sys.argv = sys.argv[1:]
        with open(sys.argv[0], 'rb') as f:
            wrapper = f.read()
        name = sys.argv[0]
    else:
        sys.argv = ['']
        wrapper, name = sys.stdin.buffer.read(), '<stdin>'
        if os.environ.get('PODNET_MODULE_SERVER', '1') != '0' and served_module(wrapper):
            status = run_served(wrapper)
            if status is not None:
                sys.exit(status)
    cache_compiled_code()
    run_wrapper(wrapper, name)


def run_served(wrapper):
    """The exit status of the wrapper run by this node's server, or None
    when no server ran it (none listens and none could be started, or it
    declined): then nothing of the module ran and the caller runs it.
    A module killed by a signal kills this process with the same signal."""
    sock = _connect()
    if sock is None and _listening(_start(wrapper)):
        sock = _connect()
    if sock is None:
        return None
    with sock:
        return _request(sock, wrapper)


def _connect():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.path.join(SERVER_DIR, SOCKET))
        return sock
    except OSError:
        sock.close()
        return None


def _listening(started):
    """Whether the server started with this pipe's write end as its stdout
    says it listens within START_WAIT_SECONDS (end of file: it failed)."""
    if started is None:
        return False
    with open(started, 'rb', buffering=0) as pipe:
        readable, _, _ = select.select([pipe], [], [], START_WAIT_SECONDS)
        return bool(readable) and pipe.read(len(LISTENING)) == LISTENING


def served_module(wrapper):
    """Whether the server may run this wrapper's module: podnet's own only."""
    return any(marker in wrapper for marker in SERVED_MODULES)


def fingerprint():
    """What the server's code outside module zips is: this Python, these two
    scripts, the packages installed in the venv (pyroute2)."""
    paths = [sys.executable, os.path.abspath(__file__), SERVER]
    paths += [p for p in sys.path if p.endswith('site-packages')]
    found = []
    for path in paths:
        try:
            info = os.stat(path)
            found.append((path, info.st_mtime_ns, info.st_size))
        except OSError:
            found.append((path, None, None))
    return found


def startup_environment(env):
    """What Python takes from the environment when it starts: a server
    started with other values would run modules differently."""
    return sorted((k, v) for k, v in env.items() if k.startswith(('PYTHON', 'LC_')) or k in ('LANG', 'TZ'))


def _request(sock, wrapper):
    header = marshal.dumps({'argv': sys.argv, 'cwd': _cwd(), 'umask': _umask(), 'env': dict(os.environ),
                            'fingerprint': fingerprint()})
    try:
        sock.settimeout(STARTED_SECONDS)
        socket.send_fds(sock, [struct.pack('!II', len(header), len(wrapper))], [0, 1, 2])
        sock.sendall(header + wrapper)
        started = recv_exact(sock, 5)
    except OSError:
        return None
    if started[:1] != b'P' or len(started) != 5:
        return None  # declined, or gone before it forked: nothing ran
    try:
        child = os.pidfd_open(int.from_bytes(started[1:], 'big'))
    except OSError:
        child = None  # it has ended already
    for signum in RELAYED:
        signal.signal(signum, lambda number, _frame: _relay(child, number))
    sock.settimeout(None)  # a module runs as long as it needs
    ended = recv_exact(sock, 5)
    if len(ended) == 5 and ended[:1] == b'X':
        return int.from_bytes(ended[1:], 'big', signed=True)
    if len(ended) == 5 and ended[:1] == b'K':
        signum = int.from_bytes(ended[1:], 'big')
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # ended as its module was
    sys.stderr.write('podnet module server: the module process ended without an exit status\n')
    return 1


def _relay(pidfd, signum):
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass


def _start(wrapper):
    """Start a server, seeded with this run's zip: the read end of a pipe
    that is its stdout, or None when the node has no place for one, or the
    last server to start failed (see SERVER_DIR/error) less than
    IDLE_SECONDS ago."""
    try:
        if time.time() - os.stat(os.path.join(SERVER_DIR, ERROR)).st_mtime < IDLE_SECONDS:
            return None
    except OSError:
        pass
    if not os.path.isdir(os.path.dirname(SERVER_DIR)):
        return None  # /run/podnet is a lab node's (its init makes it): elsewhere, no server
    seed = os.path.join(SERVER_DIR, 'seed-%d' % os.getpid())
    try:
        os.makedirs(SERVER_DIR, mode=0o700, exist_ok=True)
        write_private(seed, wrapper)
        told, tell = os.pipe()
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                os.posix_spawn(sys.executable, [sys.executable, SERVER, seed], dict(os.environ), setsid=True,
                               file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, tell, 1),
                                             (os.POSIX_SPAWN_DUP2, devnull, 2)])
            finally:
                os.close(devnull)
        except OSError:
            os.close(told)
            raise
        finally:
            os.close(tell)
        return told
    except OSError:
        remove_quietly(seed)
        return None


def write_private(path, data):
    """A file only root reads (the server's folder holds module code)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 'wb') as f:
        f.write(data)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _cwd():
    """The working folder, or where the wrapper would go without one."""
    try:
        return os.getcwd()
    except OSError:
        return os.path.expanduser('~')


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def recv_exact(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


if __name__ == '__main__':
    main()
