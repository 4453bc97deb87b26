"""RuntimeDefault seccomp, for real: each test forks a child that installs
the program and reports what its syscalls did through a pipe (a filter
never comes off, so the pytest process never installs one). Needs root,
as the spawner's children are; skipped otherwise."""
import ast
import ctypes
import errno
import inspect
import json
import os
import socket
import subprocess
import sys

import pytest
from ansible.module_utils.podnet.kernel import caps, linux, rawnl, seccomp
from ansible.module_utils.podnet.pods import spawner

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason='installs filters as root does, without no_new_privs')

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
SYS_CLONE3 = 435  # x86_64 and aarch64 alike
RUNTIME_DEFAULT = frozenset(caps.NUMBERS[name] for name in caps.RUNTIME_DEFAULT)
WITH_SYS_ADMIN = RUNTIME_DEFAULT | {caps.NUMBERS['SYS_ADMIN']}
NOWHERE = b'/nonexistent-podnet-seccomp-test'  # unfiltered, mount fails with ENOENT, not EPERM


def outcome(result):
    """'ok', or the errno's name of a failed libc call."""
    return 'ok' if result >= 0 else errno.errorcode[ctypes.get_errno()]


def raised(call, *args):
    """'ok', or the errno's name of the OSError that call raised."""
    try:
        call(*args).close()
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return 'ok'


def confined(program, probe):
    """What probe() returns when run in a forked child under program."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            seccomp.install_seccomp(program)
            report = probe()
        except BaseException as exc:  # noqa: BLE001  (the child reports, never returns into pytest)
            report = {'error': repr(exc)}
        finally:
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, 'rb') as reader:
        report = json.loads(reader.read())
    os.waitpid(pid, 0)
    return report


def fork_exit_code():
    """os.fork() goes through glibc's clone, with no namespace flags."""
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def runtime_default_probe():
    with open(__file__, 'rb') as source:
        readable = len(source.read()) > 0
    return {
        'unshare_user': outcome(LIBC.unshare(CLONE_NEWUSER)),
        'mount': outcome(LIBC.mount(b'none', NOWHERE, b'tmpfs', ctypes.c_ulong(0), None)),
        'vsock': raised(socket.socket, socket.AF_VSOCK, socket.SOCK_STREAM),
        'udp': raised(socket.socket, socket.AF_INET, socket.SOCK_DGRAM),
        'clone3': outcome(LIBC.syscall(ctypes.c_long(SYS_CLONE3), None, ctypes.c_size_t(0))),
        'fork': fork_exit_code(),
        'personality_query': outcome(LIBC.personality(ctypes.c_ulong(0xffffffff))),
        'addr_no_randomize': outcome(LIBC.personality(ctypes.c_ulong(0x0040000))),
        'getpid': os.getpid() > 0,
        'read_file': readable,
    }


def test_runtime_default_denies_namespaces_mounts_vsock_and_odd_personas():
    report = confined(seccomp.seccomp_program(RUNTIME_DEFAULT), runtime_default_probe)
    assert report == {'unshare_user': 'EPERM', 'mount': 'EPERM', 'vsock': 'EPERM', 'udp': 'ok',
                      'clone3': 'ENOSYS', 'fork': 7, 'personality_query': 'ok',
                      'addr_no_randomize': 'EPERM', 'getpid': True, 'read_file': True}


def test_sys_admin_allows_namespaces_and_clone3():
    report = confined(seccomp.seccomp_program(WITH_SYS_ADMIN), lambda: {
        'unshare_user': outcome(LIBC.unshare(CLONE_NEWUSER)),
        'clone3': outcome(LIBC.syscall(ctypes.c_long(SYS_CLONE3), None, ctypes.c_size_t(0)))})
    assert report == {'unshare_user': 'ok', 'clone3': 'EINVAL'}  # the kernel's answer to size 0


def test_a_confined_process_execs():
    program = seccomp.seccomp_program(RUNTIME_DEFAULT)
    pid = os.fork()
    if pid == 0:
        try:
            seccomp.install_seccomp(program)
            os.execv('/bin/true', ['true'])
        finally:
            os._exit(127)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_one_program_per_set_of_capabilities_that_matter():
    program = seccomp.seccomp_program(RUNTIME_DEFAULT)
    assert seccomp.seccomp_program(sorted(RUNTIME_DEFAULT) + [caps.NUMBERS['NET_ADMIN']]) is program
    assert seccomp.seccomp_program(WITH_SYS_ADMIN) != program
    assert len(program) > 0 and len(program) % 8 == 0


def test_capability_bits_agree_with_caps():
    assert seccomp.SECCOMP_CAP_BITS == {name: caps.NUMBERS[name]
                                        for name in seccomp.SECCOMP_CAP_BITS}
    assert set(seccomp.SECCOMP_ALLOW_WITH_CAP) == set(seccomp.SECCOMP_CAP_BITS)


def test_a_filter_the_kernel_refuses_is_named():
    report = confined(b'', lambda: {})
    assert 'installing the RuntimeDefault seccomp filter: Invalid argument' in report['error']


def test_missing_libseccomp_says_what_to_do(monkeypatch):
    monkeypatch.setattr(seccomp, 'SECCOMP_LIBRARY', 'libseccomp-podnet-absent.so.0')
    seccomp._seccomp_compiled.cache_clear()
    with pytest.raises(OSError, match=r'needs libseccomp \(apt-get install libseccomp2\), '
                                      r'or set seccompProfile type Unconfined'):
        seccomp.seccomp_program(RUNTIME_DEFAULT)


def test_runs_beside_linux_rawnl_and_spawner_in_a_bare_interpreter():
    """The spawner concatenates the sources (sandbox.SpawnerClient): standard
    library only, and no module-level name defined in two of them."""
    def defined(module):
        names = set()
        for node in ast.parse(inspect.getsource(module)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(name.id for target in node.targets for name in ast.walk(target)
                             if isinstance(name, ast.Name))
        return names
    sources = (linux, rawnl, seccomp, spawner)
    for i, one in enumerate(sources):
        for other in sources[i + 1:]:
            assert defined(one) & defined(other) == set(), (one.__name__, other.__name__)
    program = inspect.getsource(linux) + inspect.getsource(seccomp) + 'print(len(seccomp_program([])) % 8)'
    result = subprocess.run([sys.executable, '-S', '-c', program], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, '0\n'), result.stderr
