"""The pods of one node, reconciled: podnet_pods' Reconciler.

read() takes the records (records.py), checks each against the kernel
(health.py), tries the probes of each running pod (probes.py) and reads
the node's sandboxes, IPAM, guard and pod cgroups;
plan() is the Planner's (planner.py); apply() the PodRuntime's
(runtime.py). A broken pod is recreated, a container that died is
restarted (in a fresh cgroup and writable folders, as a runtime starts a
new container), and pods no longer wanted are removed with everything
they had: whatever still runs in their network namespace or their cgroups
is killed, not only the processes the record names."""
import os

from ansible.module_utils.podnet.core.reconcile import Reconciler
from ansible.module_utils.podnet.kernel import cgroups, nft
from ansible.module_utils.podnet.kernel.netlink import links_by_name, rtnl
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.node.nodestate import IPAM_DIR
from ansible.module_utils.podnet.pods import initcontainers, srcguard
from ansible.module_utils.podnet.pods.chain import CNI_DIR, DEFAULT_CNI_PATH, PodChain
from ansible.module_utils.podnet.pods.health import Checker
from ansible.module_utils.podnet.pods.ipam import HostLocalIpam, attachment_ports
from ansible.module_utils.podnet.pods.planner import NodeState, Planner, stays_failed
from ansible.module_utils.podnet.pods.probes import Prober
from ansible.module_utils.podnet.pods.records import RecordStore, spec_hash
from ansible.module_utils.podnet.pods.runtime import PodRuntime
from ansible.module_utils.podnet.pods.sandbox import Process, SpawnerClient, list_netns

SHOWN = ('ip', 'netns', 'veth', 'mac', 'uid')  # what the module returns of each pod


class PodsReconciler(Reconciler):
    """wanted: the pods of this node by namespace/name; pod_cidr None means
    state absent, which removes every pod without checking it.
    hierarchies: cgroups.read_hierarchies() unless given ({}: none)."""
    subject = 'pods of this node'

    def __init__(self, state_dir, pod_cidr, mtu, run, wanted=None, check_mode=False, view=(),
                 pids_limit=cgroups.DEFAULT_PIDS_LIMIT, hierarchies=None, init_timeout=initcontainers.DEFAULT_TIMEOUT,
                 cni=None):
        self.lock_dir, self.absent, self.check_mode = state_dir, pod_cidr is None, check_mode
        self.pods = wanted or {}
        self.run = run
        self.hierarchies = cgroups.read_hierarchies() if hierarchies is None else hierarchies
        self.store = RecordStore(state_dir)
        self.ipam = HostLocalIpam(state_dir, pod_cidr) if pod_cidr else None
        # cni: (the chain's list or None, CNI_PATH): a list wires the pods (chain.py)
        self.chain = PodChain.load(cni[0], state_dir, cni[1]) if cni and cni[0] else None
        self.checker = Checker(self.ipam, mtu, self.hierarchies, self.chain)
        self.planner = Planner(mtu, pids_limit, self.hierarchies, self.store)
        self.runtime = PodRuntime(self.store, self.ipam, mtu, pids_limit, self.hierarchies, view, run)
        self.runtime.init_timeout = init_timeout
        self.runtime.chain = self.chain
        self.runtime.cni_path = cni[1] if cni else DEFAULT_CNI_PATH

    # -- reading -----------------------------------------------------------
    def read(self):
        return self._read_remains() if self.absent else self._read_current()

    def _read_current(self):
        records, unreadable = self.store.read()
        with rtnl() as ipr:
            links = links_by_name(ipr)
        bridge = links[BRIDGE]['index'] if BRIDGE in links else None
        health = {key: self.checker.check(record, links, bridge) for key, record in records.items()}
        self._judge(records, health)
        owners = self.ipam.owners()
        attachments = attachment_ports(owners)
        failed, untrusted = self.store.failed()
        return NodeState(records, list_netns(), owners, self.ipam.stale_folders(), self._guard(),
                         dict(unreadable, **untrusted), foreign_ports(links, bridge, records, attachments),
                         sole_bridge(links), *self._own_cgroups(records, set(owners.values())),
                         folders=self.store.folders(), health=health, attachments=attachments, failed=failed)

    def _judge(self, records, health):
        """Each running pod's probes: its Health says why it is not ready and
        which containers failed their liveness probe. A pod to be made again
        is not ready, and its probes are not tried."""
        spawn = SpawnerClient()  # started only if an exec probe needs it
        try:
            for key, record in records.items():
                pod, found = self.pods.get(key), health[key]
                if found.problems or pod is None or record['spec_hash'] != spec_hash(pod):
                    found.unready = list(found.problems) or ['not wanted as it runs']
                    continue
                found.unready, found.unhealthy = Prober(self.hierarchies, spawn).judge(record, pod, found.dead)
        finally:
            spawn.close()

    def _read_remains(self):
        """For state absent: the records (unchecked), sandboxes, the guard
        and the state folders of pods (records and logs, IPAM)."""
        records, unreadable = self.store.read()
        folders = [d for d in (self.store.pods_dir, self.store.failed_dir, os.path.join(self.store.state_dir, IPAM_DIR),
                               os.path.join(self.store.state_dir, CNI_DIR))
                   if os.path.isdir(d)]
        own, foreign = self._own_cgroups(records, HostLocalIpam.every_owner(self.store.state_dir))
        return NodeState(records, list_netns(), {}, folders, self._guard(), unreadable,
                         cgroups=own, foreign_cgroups=foreign)

    def _guard(self):
        return nft.current_table(self.run, srcguard.FAMILY, srcguard.TABLE)

    def _own_cgroups(self, records, allocated):
        """({uid: cgroup} of the pods podnet started, whether kubepods holds
        others). podnet's are the ones its records or IPAM files name: IPAM
        names a pod before its cgroup is made, so a run cut short leaves
        none unnamed; a kubelet's pods on the same machine are never ours."""
        found = cgroups.pod_folders(self.hierarchies)
        own = {r['uid'] for r in records.values()} | allocated
        return {u: p for u, p in found.items() if u in own}, bool(set(found) - own)

    # -- the contract --------------------------------------------------------
    def plan(self, current):
        return self.planner.plan_absent(current) if self.absent else self.planner.plan(current, self.pods)

    def apply(self, actions, current):
        self.runtime.apply(actions, current, self.pods)

    def show(self, state):
        """Pods as the diff shows them now (a Failed one by why it failed)."""
        shown = {k: {'failed': ended['reason']} for k, ended in state.failed.items()}
        shown.update({k: _with_init(_view(r.get('commands'), state.health_of(k).dead, state.health_of(k).problems,
                                          r.get('labels')), r.get('init_commands'), r.get('init_containers') or {})
                      for k, r in state.pods.items()})
        return shown

    def show_wanted(self, current):
        """The wanted pods as the diff shows them, after a run from current:
        init containers run again only with a new sandbox."""
        return {k: ({'failed': stays_failed(current, k, pod)} if stays_failed(current, k, pod) else
                    _with_init(_view({c['name']: c['argv'] for c in pod['containers']}, _left_down(current, k, pod),
                                     (), pod.get('labels', {})),
                               {c['name']: c['argv'] for c in pod.get('init_containers') or ()},
                               _init_kept(current, k, pod)))
                for k, pod in self.pods.items()}

    def result(self, current, actions):
        new = sorted(a.target for a in actions if a.verb in ('create', 'recreate'))
        return {'pods': {k: {f: r.get(f) for f in SHOWN} for k, r in current.pods.items()},
                'pending': new if self.check_mode else [],
                'ips': {k: r.get('ip') for k, r in current.pods.items()},
                'unready': [] if self.absent else self._unready(current, actions),
                'failed_pods': {k: ended['reason'] for k, ended in sorted(current.failed.items())}}

    def _unready(self, current, actions):
        """Sorted keys of the running pods that are not ready: as read, or,
        for those this run started or restarted, once they had time to be."""
        started = {a.target for a in actions if a.verb in ('create', 'recreate', 'restart')}
        if self.check_mode:
            started = set()
        settled = Prober(self.hierarchies, SpawnerClient())
        try:
            fresh = settled.settle({k: (current.pods[k], self.pods[k]) for k in started if k in current.pods},
                                   exited)
        finally:
            settled.spawn.close()
        return sorted(set(fresh) | {k for k in current.pods if k not in started and current.health_of(k).unready})

    def warnings(self, current, result):
        said = ['pod %s is Failed, and stays so until its spec changes (restartPolicy Never): %s' % (key, why)
                for key, why in result['failed_pods'].items()]
        lacking = [c for c in cgroups.CONTROLLERS if c not in self.hierarchies]
        if lacking and not self.absent:
            said.append('this node has no %s cgroup controller: its pods run without those limits'
                        % ', '.join(lacking))
        return said


def exited(record):
    """Names of a record's containers that are not running."""
    return [name for name, proc in record['containers'].items() if not Process.from_dict(proc).alive()]


def _left_down(current, key, pod):
    """Containers a restartPolicy of Never keeps exited."""
    record = current.pods.get(key)
    if pod.get('restart_policy') != 'Never' or not record or record['spec_hash'] != spec_hash(pod):
        return ()
    return current.health_of(key).dead


def _init_kept(current, key, pod):
    """What the init containers of a pod kept as it runs did ({} when its
    sandbox is made again: they run again)."""
    record = current.pods.get(key)
    if not record or record['spec_hash'] != spec_hash(pod) or current.health_of(key).problems:
        return {}
    return record.get('init_containers') or {}


def _with_init(shown, commands, done):
    """shown, with the pod's init containers: completed, or to run."""
    if commands:
        shown['init_containers'] = {
            name: '%s (%s)' % (' '.join(argv), 'completed' if name in done else 'runs to completion first')
            for name, argv in commands.items()}
    return shown


def _view(commands, dead, problems, labels):
    shown = {'containers': {name: '%s (%s)' % (' '.join(argv), 'exited' if name in dead else 'running')
                            for name, argv in (commands or {}).items()},
             'labels': labels or {}}
    if problems:
        shown['broken'] = list(problems)
    return shown


def foreign_ports(links, bridge, records, attachments=()):
    """Ports of the pod bridge that no pod record names, nor an attachment
    podnet-cni made for a runtime: a hand-made link, or the veth of a
    sandbox no record owns (swept with it)."""
    if bridge is None:
        return []
    veths = {r['veth'] for r in records.values()} | {a['veth'] for a in attachments}
    return sorted(name for name, link in links.items()
                  if link.get('IFLA_MASTER') == bridge and name not in veths)


def sole_bridge(links):
    return not any(link.get(('IFLA_LINKINFO', 'IFLA_INFO_KIND')) == 'bridge'
                   for name, link in links.items() if name != BRIDGE)


def container_view(paths):
    """The paths containers see besides the system folders: each given one,
    and for a virtual environment the Python installation it is made from."""
    found = []
    for path in paths:
        found += [path, os.path.realpath(path)]  # a symlinked venv: the link and what it names
        try:
            with open(os.path.join(path, 'pyvenv.cfg')) as f:
                home = dict(line.split('=', 1) for line in f if '=' in line).get('home ', '').strip()
        except FileNotFoundError:
            continue
        if home:
            found.append(os.path.dirname(os.path.realpath(home)))
    return sorted(set(found))
