"""Spawner: the small process that forks pod sandboxes and containers.

Forking costs time in proportion to the forking process's memory; an Ansible
module with pyroute2 loaded forks five times slower than a bare interpreter.
So a module that starts pods runs this file once per call (standard library
only, `python -S`, after the sources of kernel/linux.py, kernel/rawnl.py and
kernel/seccomp.py, which it uses), sends it one JSON request per line and reads one JSON
reply per line. A container is one fork: the spawner enters the sandbox's
namespaces, forks the container (PID 1 of a new PID namespace), and goes
home; the container mounts its /proc and execs.

Requests:
  {"op": "sandbox", "netns": PATH, "hostname": NAME}
      new network, UTS, IPC and PID namespaces; the network namespace is
      bound to PATH (as `ip netns add` does); the pause process holds them:
      /bin/cat as `/pause`, blocked forever on a pipe it holds both ends of.
      No fork: the spawner enters the new namespaces, posix_spawns, returns.
      (The module puts pause in its cgroup: the spawner is the busier.)
  {"op": "container", "netns": PATH, "pause": PID, "argv": [...], "env": {...},
   "cwd": DIR, "log": FILE, "caps": [NUMBER...], "view": [PATH...],
   "scratch": DIR, "cgroups": [DIR...], "seccomp": BOOL, "binds": [[SOURCE, TARGET]...]}
      joins the cgroups, the sandbox's network (PATH) and the pause
      process's UTS and IPC namespaces, gets new PID and mount namespaces
      and a root of its own (system folders and `view`, read-only; /tmp,
      /var/tmp and /run writable, on disk in `scratch`; each bind's SOURCE
      read-only at TARGET, as the pod's resolv.conf and hosts), keeps only `caps`,
      with seccomp: under the RuntimeDefault profile (seccomp.py), execs argv.
  {"op": "probe", "target": PID, "argv": [...], "env": {...}, "cwd": DIR,
   "caps": [NUMBER...], "seccomp": BOOL, "user": {...}, "no_new_privs": BOOL,
   "cgroups": [DIR...], "timeout": SECONDS}
      an exec probe: a fork joins the cgroups and the namespaces of the
      container whose PID 1 is PID (mount namespace and so its root too),
      forks the command confined as a container (caps, seccomp, user), and
      waits for it at most `timeout` seconds (then kills it).
  {"op": "run", ...what "container" takes..., "timeout": SECONDS}
      an init container: forked as any container, then waited for until it
      ends, at most `timeout` seconds (then killed). The spawner is its
      parent, so it alone can read the exit code; it serves nothing else
      meanwhile.
Replies: {"pid": HOST_PID, "start": START_TIME}, {"status": EXIT_CODE}
(a probe; -1 when it timed out), both (a run) or {"error": TEXT}. An exit
code is 128 + the signal's number for a process a signal ended, as the
kubelet reports it.
"""
import collections
import ctypes
import json
import os
import select
import signal
import struct
import sys
import warnings  # noqa: F401  os.execvpe imports it late, when the container's root no longer has it

try:
    from ansible.module_utils.podnet.kernel.linux import (
        CLONE_NEWCGROUP,
        CLONE_NEWIPC,
        CLONE_NEWNET,
        CLONE_NEWNS,
        CLONE_NEWPID,
        CLONE_NEWUTS,
        MNT_DETACH,
        MS_BIND,
        MS_NODEV,
        MS_NOEXEC,
        MS_NOSUID,
        MS_PRIVATE,
        MS_RDONLY,
        MS_REC,
        MS_REMOUNT,
        NETNS_DIR,
        check,
        libc,
        mount,
        read_stat,
    )
    from ansible.module_utils.podnet.kernel.rawnl import Rtnl, VethPair, add_address, add_default_route, add_veth_inside
    from ansible.module_utils.podnet.kernel.seccomp import install_seccomp, seccomp_program
except ImportError:  # run as the spawner process: linux's, rawnl's and seccomp's sources precede this one
    pass

PAUSE_PROGRAM, PAUSE_ARGV0 = '/bin/cat', '/pause'
TIMED_OUT = -1  # the status of a probe or init container that ran past its timeout


def _setns(path, nstype):
    fd = os.open(path, os.O_RDONLY)
    try:
        check(libc.setns(fd, nstype), 'setns ' + path)
    finally:
        os.close(fd)


LOOPBACK, ETH0 = 1, 2  # ifindexes in a fresh namespace: lo, then the eth0 we ask for


def wire_pod_side(req, home_net):
    """From inside the new namespace: eth0 (index 2) with its host peer moved
    home, lo and eth0 up, the pod address and the default route (the same
    calls podnet-cni makes in a runtime's namespace, cniplugin/wiring.py)."""
    nl = Rtnl()
    try:
        add_veth_inside(nl, VethPair('eth0', req['veth'], req['mtu'], req['mac'], ETH0), home_net)
        nl.set_link(LOOPBACK)
        nl.set_link(ETH0)
        add_address(nl, ETH0, req['cidr'], req['broadcast'])
        add_default_route(nl, ETH0, req['gateway'])
    finally:
        nl.close()


def loopback_up():
    """lo up in the namespace this process is in (a fresh one: index 1)."""
    nl = Rtnl()
    try:
        nl.set_link(LOOPBACK)
    finally:
        nl.close()


SANDBOX_NAMESPACES = {CLONE_NEWNET: 'net', CLONE_NEWUTS: 'uts', CLONE_NEWIPC: 'ipc',
                      CLONE_NEWPID: 'pid'}


def spawn_sandbox(req, home, home_rtnl):
    """No fork: the spawner itself unshares the sandbox's namespaces, binds
    the network namespace, wires the pod side (when the request has a
    `veth`), posix_spawns the pause process (the first child in the new PID
    namespace, so its PID 1), returns home with setns and puts the host
    side on the bridge. home: {clone flag: fd of the spawner's namespace}."""
    fd = os.open(req['netns'], os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    pid = None
    try:
        check(libc.unshare(sum(SANDBOX_NAMESPACES)), 'unshare')
        try:
            name = req['hostname'].encode()
            check(libc.sethostname(name, len(name)), 'sethostname')
            mount('/proc/self/ns/net', req['netns'], None, MS_BIND)
            if req.get('veth'):
                wire_pod_side(req, home[CLONE_NEWNET])
            else:  # a CNI chain wires eth0 after; lo is the runtime's, as podman and CRI-O do
                loopback_up()
            pid = _spawn_pause()
        finally:
            _go_home(home)
        if req.get('veth'):
            home_rtnl.bridge_port(req['veth'], req['bridge'])
        return pid
    except OSError:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        libc.umount2(req['netns'].encode(), MNT_DETACH)
        os.unlink(req['netns'])
        raise


# Python ignores these, and an ignored signal stays ignored across exec; a
# container runtime starts pause and containers with every signal at its
# default (`yes | head -1` ends yes by SIGPIPE).
PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


def _spawn_pause():
    """/bin/cat as /pause, reading a pipe whose write end it holds itself."""
    hold_r, hold_w = os.pipe()
    null = os.open('/dev/null', os.O_WRONLY)
    os.set_inheritable(hold_w, True)
    try:
        return os.posix_spawn(PAUSE_PROGRAM, [PAUSE_ARGV0], {}, setsid=True, setsigdef=PYTHON_IGNORES,
                              file_actions=[(os.POSIX_SPAWN_DUP2, hold_r, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                            (os.POSIX_SPAWN_DUP2, null, 2)])
    finally:
        for fd in (hold_r, hold_w, null):
            os.close(fd)


def _enter_sandbox(req):
    """The spawner joins the sandbox's network, UTS and IPC namespaces and
    asks for a new PID namespace for its next child."""
    _setns(req['netns'], CLONE_NEWNET)
    _setns('/proc/%d/ns/uts' % req['pause'], CLONE_NEWUTS)
    _setns('/proc/%d/ns/ipc' % req['pause'], CLONE_NEWIPC)
    check(libc.unshare(CLONE_NEWPID), 'unshare')


def _go_home(home):
    for flag, own in home.items():
        check(libc.setns(own, flag), 'setns back')


def join_cgroups(folders, pid=0):
    """Move pid (0: the caller) into each cgroup folder."""
    for folder in folders:
        with open(folder + '/cgroup.procs', 'w') as f:
            f.write(str(pid))


def _exec_container(req, program, err_w):
    """program: the seccomp filter to load last, or None (Unconfined)."""
    join_cgroups(req.get('cgroups') or ())
    check(libc.unshare(CLONE_NEWNS | (CLONE_NEWCGROUP if req.get('cgroupfs') else 0)), 'unshare')
    os.setsid()
    mount(None, '/', None, MS_REC | MS_PRIVATE)
    null = os.open('/dev/null', os.O_RDONLY)
    log = os.open(req['log'], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)  # before the view hides it
    _enter_view(req.get('view') or (), req['scratch'], req.get('cgroupfs') or (), req.get('binds') or ())
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(req.get('cwd') or '/')
    _keep_capabilities(req['caps'])
    for signum in PYTHON_IGNORES:
        signal.signal(signum, signal.SIG_DFL)
    if req.get('no_new_privs'):
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'no_new_privs')
    if program:  # while CAP_SYS_ADMIN is still effective: exec drops it
        install_seccomp(program)
    _become(req.get('user'))
    os.write(err_w, EXEC_MARK.encode())
    os.execvpe(req['argv'][0], req['argv'], req['env'])


# -- the container's view of the filesystem ---------------------------------
# Pods share the node's programs, not its state: a new root on a tmpfs holds
# read-only binds of the system folders and of the paths the module exposes
# (the pods' Python and tools), fresh /proc, /sys, /dev and writable scratch
# folders. The scratch folders are on the node's disk, in the pod's own
# folder that goes with the pod, as a runtime's writable layer is: a tmpfs
# would let a pod fill the machine's memory (each may grow to half of it).
# /dev/shm is the one memory-backed folder, of 64 MiB as runtimes make it.
# Everything else (the lab's keys in .lab/, the node's
# state, other pods' logs, root's home) is simply not there. The old root
# goes, and with it every sandbox's /run/netns binding, which would
# otherwise keep deleted pods' namespaces alive.
SYSTEM_VIEW = ('/usr', '/etc', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32')
MASKED = ('/etc/ssh', '/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/etc/sudoers.d')
SCRATCH = {'/tmp': 0o1777, '/var/tmp': 0o1777, '/run': 0o755}
SHM_SIZE = '64m'  # Docker's and containerd's /dev/shm
DEVICES = ('null', 'zero', 'full', 'random', 'urandom', 'tty')
# /proc as container runtimes leave it: the kernel's knobs read-only (a pod
# is root of the machine's user namespace: a writable core_pattern or
# modprobe path would run its program as the machine's root), the files
# that reboot the machine or show its keys and memory hidden.
PROC_READ_ONLY = ('/proc/sys', '/proc/bus', '/proc/fs', '/proc/irq')
PROC_MASKED = ('/proc/sysrq-trigger', '/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/latency_stats',
               '/proc/timer_stats', '/proc/sched_debug')
# Folders runtimes hide behind an empty read-only tmpfs: the machine's
# firmware tables (ACPI, EFI) and power capping.
MASKED_FOLDERS = ('/proc/acpi', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap')
NEW_ROOT = NETNS_DIR  # any folder will do as the mount point; this one always exists
SYS_PIVOT_ROOT = {'x86_64': 155, 'aarch64': 41}


def _enter_view(view, scratch, cgroupfs, binds):
    mount('tmpfs', NEW_ROOT, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755,size=1m')
    # Scratch first: a view path may lie under /tmp (a clone of the project).
    for path, mode in SCRATCH.items():
        source = os.path.join(scratch, path.strip('/').replace('/', '-'))
        os.makedirs(source, exist_ok=True)
        os.chmod(source, mode)
        os.makedirs(NEW_ROOT + path, exist_ok=True)
        mount(source, NEW_ROOT + path, None, MS_BIND)
        mount(None, NEW_ROOT + path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    for path in SYSTEM_VIEW + tuple(view):
        _expose(path)
    for path in MASKED:
        _mask(NEW_ROOT + path)
    for source, target in binds:
        _bind_over(source, target)
    for path in ('/proc', '/sys', '/dev'):
        os.makedirs(NEW_ROOT + path, exist_ok=True)
    _devices()
    os.chdir(NEW_ROOT)
    check(libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b'.', b'.'), 'pivot_root')
    check(libc.umount2(b'.', MNT_DETACH), 'umount the old root')
    os.chdir('/')
    mount(None, '/', None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    mount('proc', '/proc', 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in PROC_READ_ONLY:
        if os.path.exists(path):
            _bind_ro(path, path)
    for path in PROC_MASKED:
        if os.path.exists(path):
            _bind_ro('/dev/null', path)
    mount('sysfs', '/sys', 'sysfs', MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    for path in MASKED_FOLDERS:
        if os.path.isdir(path):
            mount('tmpfs', path, 'tmpfs', RO_SPECIAL, 'size=0')
    _cgroup_view(cgroupfs)


CGROUP_ROOT = '/sys/fs/cgroup'
RO_SPECIAL = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY


def _cgroup_view(hierarchies):
    """The container's own cgroups, read-only at /sys/fs/cgroup, as
    containerd shows them: rooted at the container's cgroup (its cgroup
    namespace), so what sizes itself from its cgroup (the JVM, Go's
    runtime) reads its own limits, not the machine's. hierarchies:
    [(mount point, type, options)] as the node mounts them."""
    if not hierarchies:
        return
    if not any(path == CGROUP_ROOT for path, _, _ in hierarchies):
        mount('tmpfs', CGROUP_ROOT, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, 'mode=0755,size=64k')
        for path, _, _ in hierarchies:
            os.makedirs(path, exist_ok=True)
        mount(None, CGROUP_ROOT, None, MS_REMOUNT | RO_SPECIAL)
    for path, fstype, options in hierarchies:
        mount('cgroup', path, fstype, RO_SPECIAL, options or None)


def _expose(path):
    """path, read-only, at the same place in the new root (a symlink, as
    /bin is on a merged /usr, is copied as a symlink)."""
    target = NEW_ROOT + path
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.readlink(path), target)
        return
    if not os.path.exists(path):
        return
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, 'a').close()
    _bind_ro(path, target)


def _bind_over(source, target):
    """source, read-only, at target in the new root, over what the view
    has there (a file over /etc/resolv.conf), or at a new place on the
    root's tmpfs. A target that is a symlink (/etc/resolv.conf to
    systemd-resolved's file in /run) is followed, within the new root."""
    at = NEW_ROOT + target
    if os.path.islink(at):
        link = os.readlink(at)
        at = os.path.normpath(NEW_ROOT + link if link.startswith('/') else os.path.join(os.path.dirname(at), link))
        if not at.startswith(NEW_ROOT + '/'):
            raise OSError('%s: a symlink out of the container\'s root' % target)
    if not os.path.exists(at):
        os.makedirs(at if os.path.isdir(source) else os.path.dirname(at), exist_ok=True)
        if not os.path.isdir(source):
            open(at, 'a').close()
    _bind_ro(source, at)


def _bind_ro(source, target):
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _mask(target):
    if os.path.isdir(target) and not os.path.islink(target):
        mount('tmpfs', target, 'tmpfs', MS_RDONLY | MS_NOSUID | MS_NODEV, 'size=4k')
    elif os.path.exists(target):
        _bind_ro('/dev/null', target)


def _devices():
    """A /dev of the harmless devices only; nodev, so that a device node a
    container makes (it keeps MKNOD) opens nothing."""
    dev = NEW_ROOT + '/dev'
    mount('tmpfs', dev, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755,size=64k')
    for name in DEVICES:
        open(os.path.join(dev, name), 'a').close()
        mount('/dev/' + name, os.path.join(dev, name), None, MS_BIND)
    for name, target in (('fd', '/proc/self/fd'), ('stdin', '/proc/self/fd/0'),
                         ('stdout', '/proc/self/fd/1'), ('stderr', '/proc/self/fd/2')):
        os.symlink(target, os.path.join(dev, name))
    os.makedirs(dev + '/shm')
    mount('tmpfs', dev + '/shm', 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777,size=' + SHM_SIZE)


# -- capabilities -------------------------------------------------------------
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
CAP_VERSION_3 = 0x20080522


def _keep_capabilities(keep):
    """Drop from the bounding set every capability not in keep (a root
    process gets its bounding set at exec), and clear them from the
    inheritable set, which would otherwise carry them across exec."""
    with open('/proc/sys/kernel/cap_last_cap') as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in keep:
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), 'drop capability %d' % cap)
    header = ctypes.create_string_buffer(struct.pack('=Ii', CAP_VERSION_3, 0))
    data = ctypes.create_string_buffer(24)
    check(libc.capget(header, data), 'capget')
    words = list(struct.unpack('=6I', data.raw))
    mask = sum(1 << cap for cap in keep)
    words[2] &= mask & 0xffffffff
    words[5] &= mask >> 32
    check(libc.capset(header, ctypes.create_string_buffer(struct.pack('=6I', *words), 24)), 'capset')


def _become(user):
    """The container's user and groups, last (the filter allows setuid):
    a uid other than 0 keeps no capability across exec, as with containerd."""
    if user:
        os.setgroups(user.get('groups') or [])
        os.setgid(user.get('gid') or 0)
        os.setuid(user.get('uid') or 0)


EXEC_MARK = '\0'  # the child's last word before exec


class Forked:
    """A container forked, whose exec is not known yet. Its pipe (close-on-
    exec) reads EXEC_MARK then EOF once it has exec'd; EXEC_MARK and why,
    when exec failed; nothing, when it died before (its memory limit or a
    SIGKILL while it set itself up)."""

    def __init__(self, pid, pipe):
        self.pid = pid
        self.pipe = pipe

    def outcome(self):
        """Its host pid once it has exec'd; raises with why it did not."""
        with os.fdopen(self.pipe) as f:
            said = f.read()
        if said == EXEC_MARK:
            return self.pid
        _, status = os.waitpid(self.pid, 0)
        if said:
            raise RuntimeError(said.lstrip(EXEC_MARK).strip())
        raise RuntimeError('killed by signal %d before it could exec (over its memory limit?)'
                           % os.WTERMSIG(status) if os.WIFSIGNALED(status) else 'ended before it could exec')


def spawn_container(req, home):
    """One fork: the spawner enters the sandbox (_enter_sandbox), forks the
    container, PID 1 of its new PID namespace, and goes home; the child
    takes a mount namespace and a root of its own, mounts its /proc and
    execs. (A child that entered the sandbox itself would need a fork more,
    for PID 1: half a millisecond a container.) Returns it Forked: the
    spawner serves the next request while the child sets itself up.
    home: {clone flag: fd of the spawner's namespace}."""
    program = seccomp_program(req['caps']) if req.get('seccomp') else None  # once per caps
    err_r, err_w = os.pipe()  # close-on-exec: EOF after EXEC_MARK alone = exec done
    try:
        _enter_sandbox(req)
        pid = os.fork()
        if pid == 0:
            _container(req, program, err_w)
    except BaseException:
        os.close(err_r)
        raise
    finally:
        _go_home(home)
        os.close(err_w)
    return Forked(pid, err_r)


def _container(req, program, err_w):
    """The forked container: it execs, or reports why not and exits. It
    never returns: a fork of the spawner that did would serve requests."""
    try:
        _exec_container(req, program, err_w)
    except BaseException as exc:
        program = (req.get('argv') or ['(no program)'])[0]
        os.write(err_w, ('%s: %s' % (program, exc)).encode('utf-8', 'backslashreplace'))
    finally:
        os._exit(127)


def _wait(child, timeout):
    """The child's exit code once it ends (128 + signal for a signal), or
    TIMED_OUT after timeout seconds, when it is killed."""
    fd = os.pidfd_open(child)
    try:
        ended = select.select([fd], [], [], timeout)[0]
    finally:
        os.close(fd)
    if not ended:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return TIMED_OUT
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    return 128 - code if code < 0 else code


def run_container(req, home):
    """An init container, run to its end: {pid, start, status}. Its start
    time is read before it is reaped (a zombie still has one)."""
    pid = spawn_container(req, home).outcome()
    start = _start_or_gone(pid)
    return {'pid': pid, 'start': start, 'status': _wait(pid, req['timeout'])}


# -- exec probes ---------------------------------------------------------------
# The container's mount namespace last: from there on, /proc is its own.
PROBE_NAMESPACES = ((CLONE_NEWIPC, 'ipc'), (CLONE_NEWUTS, 'uts'), (CLONE_NEWNET, 'net'), (CLONE_NEWPID, 'pid'),
                    (CLONE_NEWCGROUP, 'cgroup'), (CLONE_NEWNS, 'mnt'))


def run_probe(req):
    """The exit code of an exec probe (TIMED_OUT past its timeout). A fork
    enters the container, so the spawner stays home; its child, in the
    container's PID namespace, is confined as the container is and execs."""
    program = seccomp_program(req['caps']) if req.get('seccomp') else None
    pid = os.fork()
    if pid == 0:
        code = 126
        try:
            code = _probe_in_container(req, program)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return TIMED_OUT if code == 255 else code


def _probe_in_container(req, program):
    entered = [(os.open('/proc/%d/ns/%s' % (req['target'], name), os.O_RDONLY), flag)
               for flag, name in PROBE_NAMESPACES]
    null = os.open('/dev/null', os.O_RDWR)
    join_cgroups(req.get('cgroups') or ())
    for fd, flag in entered:
        check(libc.setns(fd, flag), 'setns')
    child = os.fork()
    if child == 0:
        try:
            _exec_probe(req, program, null)
        finally:
            os._exit(127)
    code = _wait(child, req['timeout'])
    return 255 if code == TIMED_OUT else min(code, 254)  # 255: the timeout's, through an exit code


def _exec_probe(req, program, null):
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    try:
        os.chdir(req.get('cwd') or '/')
    except OSError:
        os.chdir('/')
    _keep_capabilities(req['caps'])
    for signum in PYTHON_IGNORES:
        signal.signal(signum, signal.SIG_DFL)
    if req.get('no_new_privs'):
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'no_new_privs')
    if program:
        install_seccomp(program)
    _become(req.get('user'))
    os.execvpe(req['argv'][0], req['argv'], req['env'])


def _start_or_gone(pid):
    """A container may finish before its start time is read: 0 then names a
    process that is not alive, which is what it is."""
    found = read_stat(pid)
    return found[1] if found else 0


def _send(reply):
    sys.stdout.write(json.dumps(reply) + '\n')
    sys.stdout.flush()


def _answer(make):
    """Reply with the process make() started, or with why it did not."""
    try:
        pid = make()
        _send({'pid': pid, 'start': _start_or_gone(pid)})
    except Exception as exc:  # noqa: BLE001  (one request fails, the spawner serves the next)
        _send({'error': str(exc) or type(exc).__name__})


def _answer_with(make):
    """Reply with what make() found (a probe's status, a run's), or why not."""
    try:
        _send(make())
    except Exception as exc:  # noqa: BLE001  (one request fails, the spawner serves the next)
        _send({'error': str(exc) or type(exc).__name__})


def _requests(waiting):
    """Request lines from stdin. Replies keep the requests' order: while no
    new line has come, the oldest forked container is answered as soon as
    it has exec'd; at the end, all of them."""
    buffer = b''
    while True:
        while b'\n' not in buffer:
            watched = [0, waiting[0].pipe] if waiting else [0]
            if waiting and waiting[0].pipe in select.select(watched, [], [])[0]:
                _answer(waiting.popleft().outcome)
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b'\n', 1)
        yield line


def _answer_all(waiting):
    while waiting:
        _answer(waiting.popleft().outcome)


def main():
    home = {flag: os.open('/proc/self/ns/%s' % name, os.O_RDONLY)
            for flag, name in SANDBOX_NAMESPACES.items()}
    home_rtnl = Rtnl()
    waiting = collections.deque()  # Forked containers, not answered yet
    for line in _requests(waiting):
        req = json.loads(line)
        if req['op'] == 'container':
            try:
                waiting.append(spawn_container(req, home))
            except Exception as exc:  # noqa: BLE001  (the next request is served)
                _answer_all(waiting)
                _send({'error': str(exc) or type(exc).__name__})
            continue
        _answer_all(waiting)
        if req['op'] == 'probe':
            _answer_with(lambda: {'status': run_probe(req)})
            continue
        if req['op'] == 'run':
            _answer_with(lambda: run_container(req, home))
            continue
        _answer(lambda: spawn_sandbox(req, home, home_rtnl))
    _answer_all(waiting)


if __name__ == '__main__':
    main()
