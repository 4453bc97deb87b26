"""Control groups of pods and containers, laid out as kubelet lays them out.

kubelet's cgroupfs driver puts every pod under `kubepods`: a Guaranteed pod
at kubepods/pod<uid>, the others under kubepods/burstable or
kubepods/besteffort, and each container (the sandbox's pause process too) in
a cgroup of its own below its pod. Limits sit where kubelet puts them: the
pod's pids limit and, when every container has one, the sum of their memory
and CPU limits on the pod; each container's own limits on the container.

Both cgroup versions are spoken, per controller: a machine may run v2
(Debian 12's default), v1, or both at once (v1 controllers beside an empty
unified v2 tree, as this project's CI machines do). A `Hierarchy` is one
mount point and the version its files follow; `read_hierarchies` finds the
one holding each controller podnet uses. A lab node sees its own cgroup as
the root (the lab starts it in a cgroup namespace of its own: see
`node_cgroups`), as a VM sees its machine's.
"""
import errno
import os
import re
import signal
import time
from dataclasses import dataclass

CONTROLLERS = ('memory', 'cpu', 'pids')
KUBEPODS = 'kubepods'
QOS_PARENT = {'Guaranteed': '', 'Burstable': 'burstable', 'BestEffort': 'besteffort'}
POD_PATH = re.compile(r'^kubepods/(burstable/|besteffort/)?pod[0-9a-f-]+$')  # and nothing else
SANDBOX = '_pause'  # not a DNS label, so no container's name
CPU_PERIOD_US = 100000  # kubelet's CFS period
MIN_QUOTA_US = 1000     # the kernel refuses less
MIN_SHARES = 2          # kubelet's floor, and what the BestEffort class gets
BESTEFFORT = KUBEPODS + '/besteffort/'
SWAP_V1, SWAP_V2 = 'memory.memsw.limit_in_bytes', 'memory.swap.max'  # absent without swap accounting
INIT_LEAF = 'init.scope'  # a v2 lab node's own processes (podnet-lab-init says so too)
DEFAULT_PIDS_LIMIT = 1024
ROOT = '/sys/fs/cgroup'
LAB_PARENT = 'podnet'  # lab nodes' cgroups: <hierarchy>/podnet/<lab>/<host>


@dataclass(frozen=True)
class Hierarchy:
    path: str      # where it is mounted
    version: int   # 1 or 2
    options: str   # v1: the controllers it holds ('memory', 'cpu,cpuacct'); v2: ''


def _mounts(mountinfo):
    """(mount point, fstype, super options) of every cgroup mount."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            tail = fields[fields.index('-') + 1:]
            if tail[0] in ('cgroup', 'cgroup2'):
                found.append((fields[4], tail[0], tail[2]))
    return found


def _v2_controllers(path):
    try:
        with open(os.path.join(path, 'cgroup.controllers')) as f:
            return f.read().split()
    except OSError:
        return []


def read_hierarchies(mountinfo='/proc/self/mountinfo'):
    """{controller: Hierarchy} for each of CONTROLLERS the machine has; a
    controller bound to v1 is found there, else in the v2 tree."""
    found = {}
    for path, fstype, options in _mounts(mountinfo):
        if fstype == 'cgroup':
            held = [o for o in options.split(',') if o in CONTROLLERS]
            v1 = Hierarchy(path, 1, ','.join(o for o in options.split(',')
                                             if o not in ('rw', 'ro')))
            found.update((c, v1) for c in held)
    for path, fstype, _ in _mounts(mountinfo):
        if fstype == 'cgroup2':
            for c in CONTROLLERS:
                if c in _v2_controllers(path) and c not in found:
                    found[c] = Hierarchy(path, 2, '')
    return found


def distinct(hierarchies):
    """Each mount once, in a stable order."""
    return sorted(set(hierarchies.values()), key=lambda h: h.path)


# -- what each level holds ----------------------------------------------------
@dataclass(frozen=True)
class Limits:
    memory: object = None      # bytes, or None for no limit
    cpu_millis: object = None  # millicores of quota, or None
    cpu_request: object = None  # millicores of weight, or None: kubelet's floor, 2 shares
    pids: object = None        # number of processes, or None


def container_limits(resources):
    """Limits of one container from the plan's resources dict."""
    resources = resources or {}
    return Limits(resources.get('memory_limit'), resources.get('cpu_limit'),
                  resources.get('cpu_request'))


def pod_limits(containers, pids, init_containers=()):
    """kubelet's pod-level limits: memory and CPU quota only when every
    container has one, the requests, the pids limit. Each is the sum over
    the containers, or the largest of an init container's if more (init
    containers run one at a time, before the others: PodLimits)."""
    each = [container_limits(c.get('resources')) for c in containers]
    first = [container_limits(c.get('resources')) for c in init_containers]
    memory = [c.memory for c in each + first]
    cpu = [c.cpu_millis for c in each + first]
    return Limits(_effective(each, first, 'memory') if each and None not in memory else None,
                  _effective(each, first, 'cpu_millis') if each and None not in cpu else None,
                  _effective(each, first, 'cpu_request') or None, pids)


def _effective(each, first, name):
    return max([sum(getattr(c, name) or 0 for c in each)] + [getattr(c, name) or 0 for c in first])


def pids_text(limit):
    """pids.max for a limit: kubelet's -1 (or 0) is no limit, 'max'."""
    return str(limit) if limit > 0 else 'max'


def _shares(cpu_request):
    return max(MIN_SHARES, (cpu_request or 0) * 1024 // 1000)


def _quota(cpu_millis):
    return max(MIN_QUOTA_US, cpu_millis * CPU_PERIOD_US // 1000)


def limit_files(limits, version, controller):
    """{file name: text} that set `limits` in a `controller`'s hierarchy."""
    if controller == 'pids':
        return {} if limits.pids is None else {'pids.max': pids_text(limits.pids)}
    if controller == 'memory':
        if limits.memory is None:
            return {}
        # no swap beyond the limit, as kubelet's default (NoSwap); memsw
        # after the limit: v1 wants it at least as high
        if version == 1:
            return {'memory.limit_in_bytes': str(limits.memory), SWAP_V1: str(limits.memory)}
        return {'memory.max': str(limits.memory), SWAP_V2: '0'}
    # kubelet's weight even without a request (2 shares): a container that
    # asked for no CPU yields to those that did
    shares = _shares(limits.cpu_request)
    if version == 1:
        files = {'cpu.shares': str(shares)}
    else:
        files = {'cpu.weight': str(1 + (shares - MIN_SHARES) * 9999 // 262142)}
    if limits.cpu_millis:
        quota = _quota(limits.cpu_millis)
        if version == 1:
            files['cpu.cfs_quota_us'] = str(quota)
        else:
            files['cpu.max'] = '%d %d' % (quota, CPU_PERIOD_US)
    return files


# -- one pod's cgroups --------------------------------------------------------
def pod_path(qos, uid):
    """A pod's cgroup, relative to a hierarchy's root."""
    return os.path.join(KUBEPODS, QOS_PARENT[qos], 'pod' + uid)


class PodCgroups:
    """The cgroups of one pod in every hierarchy the node has.

    relative: pod_path() of the pod (records keep it). A record can hold
    anything: a path that pod_path() does not make names no folder."""

    def __init__(self, hierarchies, relative):
        self.hierarchies = hierarchies
        self.relative = relative

    def dirs(self, leaf=''):
        """The pod's (or, with leaf, one of its containers') folder in each
        distinct hierarchy; none for a pod that has no cgroup (a record an
        older podnet wrote), never the node's own."""
        if not POD_PATH.match(self.relative):
            return []
        return [os.path.join(h.path, self.relative, leaf) if leaf else os.path.join(h.path, self.relative)
                for h in distinct(self.hierarchies)]

    def create(self, pod, container):
        """The pod's folders with its limits. pod and container: {leaf name
        ('' for the pod): Limits}; the container folders are made fresh."""
        for h in distinct(self.hierarchies) if self.dirs() else ():
            held = [c for c, other in self.hierarchies.items() if other == h]
            if h.version == 2:
                _enable_down(h.path, self.relative, held)
            base = os.path.join(h.path, self.relative)
            os.makedirs(base, exist_ok=True)
            if self.relative.startswith(BESTEFFORT):  # kubelet: the class yields to the others
                _write_all(os.path.dirname(base), held, h.version, Limits(cpu_request=0))
            _write_all(base, held, h.version, pod)
            for leaf, limits in container.items():
                _fresh(os.path.join(base, leaf))
                _write_all(os.path.join(base, leaf), held, h.version, limits)
                if h.version == 2 and 'memory' in held and limits.memory is not None:
                    _write(os.path.join(base, leaf, 'memory.oom.group'), '1')

    def read(self, controller, name):
        """A file of the pod's own cgroup in a controller's hierarchy, or None."""
        hierarchy = self.hierarchies.get(controller)
        if hierarchy is None or not self.dirs():
            return None
        try:
            with open(os.path.join(hierarchy.path, self.relative, name)) as f:
                return f.read().strip()
        except OSError:
            return None

    def set_pids(self, limit):
        hierarchy = self.hierarchies.get('pids')
        if hierarchy is not None and self.dirs():
            _write(os.path.join(hierarchy.path, self.relative, 'pids.max'), pids_text(limit))

    def exists(self):
        return bool(self.dirs()) and all(os.path.isdir(d) for d in self.dirs())

    def oom_kills(self, leaf):
        """How often the kernel's OOM killer killed in one container's cgroup."""
        memory = self.hierarchies.get('memory')
        if memory is None or not self.dirs():
            return 0
        name = 'memory.oom_control' if memory.version == 1 else 'memory.events'
        try:
            with open(os.path.join(memory.path, self.relative, leaf, name)) as f:
                return next((int(line.split()[1]) for line in f if line.startswith('oom_kill ')), 0)
        except OSError:
            return 0

    def remove(self):
        """Kill whatever still runs in the pod's cgroups, then remove them."""
        for d in self.dirs():
            kill_and_remove(d)


def _write(path, text):
    """A cgroup file's value; the kernel's refusal names the file and value
    (a write error carries no file name of its own)."""
    try:
        with open(path, 'w') as f:
            f.write(text)
    except OSError as exc:
        raise OSError(exc.errno, '%s: writing %r to %s' % (exc.strerror, text, path)) from None


def _write_all(folder, controllers, version, limits):
    for controller in controllers:
        for name, text in limit_files(limits, version, controller).items():
            path = os.path.join(folder, name)
            if name in (SWAP_V1, SWAP_V2) and not os.path.exists(path):
                continue  # a kernel without swap accounting has no swap to limit
            _write(path, text)


def _fresh(folder):
    """A folder with no counters from an earlier container (a restart)."""
    if os.path.isdir(folder):
        kill_and_remove(folder)
    os.mkdir(folder)


def _enable_down(root, relative, controllers):
    """v2: a controller reaches a folder's children only when it is in the
    cgroup.subtree_control of that folder and of every folder above it:
    enable it on root and on each folder of relative, making them."""
    folder = root
    for part in [''] + [p for p in relative.split('/') if p]:
        folder = os.path.join(folder, part) if part else folder
        os.makedirs(folder, exist_ok=True)
        control = os.path.join(folder, 'cgroup.subtree_control')
        with open(control) as f:
            missing = set(controllers) - set(f.read().split())
        if missing:
            _write(control, ' '.join('+' + c for c in sorted(missing)))


def procs(folder):
    """PIDs in a cgroup and every cgroup below it."""
    found = []
    for here, _, _ in os.walk(folder):
        try:
            with open(os.path.join(here, 'cgroup.procs')) as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return found


def kill_and_remove(folder, wait=2.0):
    """Remove a cgroup tree, deepest folder first. A folder still in use
    (EBUSY) has its whole tree's processes SIGKILLed, once; a killed process
    leaves its cgroup as it exits, so rmdir is retried until then."""
    deadline = time.monotonic() + wait
    killed = False
    for here, _, _ in sorted(os.walk(folder), key=lambda w: -w[0].count('/')):
        while True:
            try:
                os.rmdir(here)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                if not killed:
                    _kill(procs(folder))
                    killed = True
                else:
                    time.sleep(0.01)


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kubepods_folders(hierarchies):
    """The kubepods folder of each hierarchy, where there is one."""
    return [d for d in (os.path.join(h.path, KUBEPODS) for h in distinct(hierarchies)) if os.path.isdir(d)]


def prune_kubepods(hierarchies):
    """Remove kubepods and its QoS folders where they hold no pod (rmdir
    alone: whatever another runtime keeps there stays)."""
    for folder in kubepods_folders(hierarchies):
        for qos in sorted(QOS_PARENT.values(), reverse=True):  # the class folders, then kubepods
            try:
                os.rmdir(os.path.join(folder, qos))
            except OSError:
                pass


def pod_folders(hierarchies):
    """{uid: relative path} of every pod cgroup on the node."""
    found = {}
    for h in distinct(hierarchies):
        for qos in QOS_PARENT.values():
            parent = os.path.join(h.path, KUBEPODS, qos)
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                relative = os.path.join(KUBEPODS, qos, name)
                if POD_PATH.match(relative) and os.path.isdir(os.path.join(parent, name)):
                    found[name[len('pod'):]] = relative
    return found


# -- a lab node's own cgroup (on the controller) -----------------------------
def node_cgroups(lab, host, hierarchies):
    """What a lab node's init joins and mounts: [{dir, mount, type,
    options}] for each distinct hierarchy. The node sees `dir` as its root,
    as a VM sees its machine's."""
    return [{'dir': os.path.join(h.path, LAB_PARENT, lab, host), 'mount': h.path,
             'type': 'cgroup' if h.version == 1 else 'cgroup2', 'options': h.options,
             'controllers': sorted(c for c, other in hierarchies.items() if other == h)}
            for h in distinct(hierarchies)]


def process_folders(entries):
    """Where a lab node's own processes go, in each of node_cgroups(): its
    folder (v1), or init.scope beside its kubepods (v2, where a folder
    with controlled children holds no process; the lab init goes there)."""
    return [os.path.join(e['dir'], INIT_LEAF) if e['type'] == 'cgroup2' else e['dir'] for e in entries]


def lab_folders(lab, hierarchies):
    """The lab's cgroup folders that exist: [<hierarchy>/podnet/<lab>]."""
    return [d for d in (os.path.join(h.path, LAB_PARENT, lab) for h in distinct(hierarchies))
            if os.path.isdir(d)]


def prepare_node(entry):
    """The node's folder, empty. v2: its parents pass the controllers down
    to it; the node enables them below itself, once its init has left the
    folder for init.scope (v2 refuses controllers below a folder that holds
    processes)."""
    parent = os.path.dirname(entry['dir'])
    if entry['type'] == 'cgroup2':
        _enable_down(entry['mount'], os.path.relpath(parent, entry['mount']), entry['controllers'])
    os.makedirs(entry['dir'], exist_ok=True)


def remove_lab_host(lab, host, hierarchies):
    for entry in node_cgroups(lab, host, hierarchies):
        if os.path.isdir(entry['dir']):
            kill_and_remove(entry['dir'])


def remove_lab(lab, hierarchies):
    """The lab's folders, and podnet's parent when no other lab uses it."""
    for folder in lab_folders(lab, hierarchies):
        kill_and_remove(folder)
        try:
            os.rmdir(os.path.dirname(folder))
        except OSError:
            pass  # another lab's nodes are there
