"""Lab hosts: init processes that each hold a host's namespaces.

A lab host (a node, the fabric, the outside host) is PID 1 of its own PID
namespace, started by the init program `podnet-lab-init LAB HOST ...`. The
process table is the source of truth: a host is running exactly when such an
init is alive, so a crashed init is found without pid files and a teardown
finds every host podnet started for a lab, even after a lost state folder.
"""
import os
import select
import signal
import time

from ansible.module_utils.podnet.core.errors import LabError
from ansible.module_utils.podnet.kernel.linux import mount_points, read_stat
from ansible.module_utils.podnet.pods.spawner import PAUSE_ARGV0

INIT_NAME = 'podnet-lab-init'


def _cmdline(pid):
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as f:
            return f.read().decode(errors='replace').split('\0')
    except OSError:
        return []


def _is_namespace_init(pid):
    """True for PID 1 of a child PID namespace (not the launcher's parent half)."""
    try:
        with open('/proc/%s/status' % pid) as f:
            for line in f:
                if line.startswith('NSpid:'):
                    return line.split()[-1] == '1' and len(line.split()) > 2
    except OSError:
        pass
    return False


def running_hosts(lab):
    """{host name: pid} of every live lab host init of `lab`."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        argv = _cmdline(entry)
        names = [i for i, a in enumerate(argv) if os.path.basename(a) == INIT_NAME]
        if names and argv[names[0] + 1:names[0] + 2] == [lab] and _is_namespace_init(entry):
            found[argv[names[0] + 2]] = int(entry)
    return found


def init_program_of(pid):
    """Path of the init program a running lab host was started from."""
    argv = _cmdline(pid)
    return next((a for a in argv if os.path.basename(a) == INIT_NAME), None)


def processes_by_pid_namespace():
    """{pid namespace id: [command names]} over the whole process table."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink('/proc/%s/ns/pid' % entry)
            with open('/proc/%s/comm' % entry) as f:
                found.setdefault(ns, []).append(f.read().strip())
        except OSError:
            continue
    return found


class LabHost:
    """One lab host: its name, kind and (once running) its init's host PID."""

    def __init__(self, lab, name, pid=None):
        self.lab = lab
        self.name = name
        self.pid = pid

    def __str__(self):
        return self.name

    def __repr__(self):
        return '<LabHost %s/%s pid=%s>' % (self.lab, self.name, self.pid)

    @property
    def netns(self):
        return '/proc/%d/ns/net' % self.pid

    def mount_points(self):
        """The paths something is mounted on in the host's mount namespace."""
        return mount_points(self.pid)

    @property
    def pid_namespace(self):
        return os.readlink('/proc/%d/ns/pid' % self.pid)

    def create(self, run, python, init_program, binds=(), serve=None, cgroups=None):
        """Start the init; binds = [(folder on the machine, path inside the
        host)]: the host's private folders (each path is made on the machine
        too, as the mount point, and never removed: removing a directory
        detaches every mount on it, in every namespace); serve = argv of a
        server the init runs as its child; cgroups: a file holding what
        cgroups.node_cgroups() gives, for a host that runs pods (a file: the
        init's command line is what `lsns` shows on the node)."""
        argv = [python, init_program, self.lab, self.name]
        for source, target in binds:
            os.makedirs(source, mode=0o755, exist_ok=True)
            os.makedirs(target, mode=0o755, exist_ok=True)
            argv += ['--bind', source, target]
        if cgroups:
            argv += ['--cgroups', cgroups]
        if serve:
            argv += ['--serve'] + list(serve)
        rc, out, err = run(argv)
        if rc != 0:
            raise LabError(self.name, 'init failed to start: %s' % (err.strip() or out.strip()))
        self.pid = int(out.split()[-1])
        return self.pid

    def enter(self, run, argv, cgroups=()):
        """Run argv inside all of this host's namespaces; orphans it leaves
        (daemons) are adopted by the host's init. cgroups: folders to put it
        in first, from outside: nsenter enters the host's cgroup namespace
        but not its cgroups, and once inside, a process may not move in
        from a cgroup outside that namespace (cgroup v2's nsdelegate)."""
        enter = ['nsenter', '--target', str(self.pid), '--all', '--'] + argv
        if cgroups:
            enter = ['sh', '-c', 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 1; shift; done; '
                     'shift; exec "$@"', 'sh'] + list(cgroups) + ['--'] + enter
        rc, out, err = run(enter)
        if rc != 0:
            raise LabError(self.name, '%s failed: %s' % (argv[0], (err or out).strip()))
        return out

    def destroy(self, timeout=3.0):
        """SIGTERM the init (the kernel then kills its whole PID namespace);
        SIGKILL if it has not gone within the timeout."""
        if self.pid is None:
            return
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self.pid = None
            return
        try:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
                signal.pidfd_send_signal(pidfd, sig)
                if select.select([pidfd], [], [], wait)[0]:
                    break
            else:
                raise LabError(self.name, 'init %d did not exit after SIGKILL' % self.pid)
        except ProcessLookupError:
            pass
        finally:
            os.close(pidfd)
        self.pid = None


def wait_for_tcp(addresses, port, timeout):
    """Wait until every address accepts TCP on port; return those that never did."""
    import socket
    pending = set(addresses)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for address in sorted(pending):
            try:
                with socket.create_connection((address, port), timeout=0.2):
                    pending.discard(address)
            except OSError:
                pass
        if pending:
            time.sleep(0.05)
    return sorted(pending)


def lab_processes(proc='/proc'):
    """{kernel_pods, kernel_lab_hosts, kernel_pods_by_node}: the pods (their
    pause processes) and the lab hosts (their podnet-lab-init: nodes, fabric,
    outside host) of every lab this process sees, and the pods under each
    node, keyed by the node's PID namespace (a pause process is PID 1 of its
    pod's own; its parent, the node's spawner or init, is in the node's).
    From the controller, in the machine's first PID namespace, that is every
    embedded lab on its kernel: they all share its neighbour table. A
    process that calls itself /pause counts only where a lab host's init
    holds its parent's PID namespace: a pod can name its processes /pause,
    and a pod's processes are in PID namespaces of their own."""
    pauses, host_namespaces, hosts = [], set(), 0
    for pid in os.listdir(proc):
        try:
            with open(os.path.join(proc, pid, 'cmdline'), 'rb') as f:
                argv = f.read().split(b'\0')
            if argv[0] == PAUSE_ARGV0.encode():
                pauses.append(_parent_pid_namespace(proc, pid))
            if INIT_NAME.encode() in map(os.path.basename, argv[:2]):  # run by its interpreter
                hosts += 1
                host_namespaces.add(os.readlink(os.path.join(proc, pid, 'ns', 'pid')))
        except (OSError, ValueError):
            continue  # not a process, or gone
    by_node = {}
    for node in pauses:
        if node in host_namespaces:
            by_node[node] = by_node.get(node, 0) + 1
    return {'kernel_pods': sum(by_node.values()), 'kernel_lab_hosts': hosts, 'kernel_pods_by_node': by_node}


def _parent_pid_namespace(proc, pid):
    found = read_stat(int(pid), proc)
    if found is None:
        raise FileNotFoundError(pid)  # gone
    return os.readlink(os.path.join(proc, str(found[0]), 'ns', 'pid'))
