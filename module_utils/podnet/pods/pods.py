"""Reconcile the pods of one node: read_current() -> plan() -> apply().

Each pod has a record in <state_dir>/pods/<namespace>_<name>.json (its
sandbox, address, veth, processes and the hash of its spec). The kernel is
checked against it as a CNI CHECK would: the pause process in its sandbox,
eth0's address, default route, MTU and veth peer, the veth on cni0, the
containers, the pod's cgroups. A broken pod is recreated, a container that
died is restarted (in a fresh cgroup and writable folders, as a runtime
starts a new container), and pods no longer wanted are removed with
everything they had: whatever still runs in their network namespace or
their cgroups is killed, not only the processes the record names.

IPAM is reconciled against the records: an address a running pod holds is
reserved again if its file is gone, addresses of pods that are gone are
released before any pod is created, and two pods never share an address.
"""
import hashlib
import ipaddress
import json
import os
import uuid
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.reconcile import Action, Reconciler
from ansible.module_utils.podnet.core.statefile import remove_any, remove_tree, write_atomic
from ansible.module_utils.podnet.kernel import caps, cgroups, nft
from ansible.module_utils.podnet.kernel.netlink import delete_link, delete_links, link_index, links_by_name, rtnl
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.node.nodestate import IPAM_DIR, PODS_DIR, read_pod_records
from ansible.module_utils.podnet.pods import spawner, srcguard
from ansible.module_utils.podnet.pods.ipam import HostLocalIpam
from ansible.module_utils.podnet.pods.sandbox import (
    Process,
    SandboxError,
    Spawner,
    kill_holders,
    list_netns,
    netns_inode,
    netns_path,
    read_inside,
    remove_netns,
)

BATCH = 32  # sandboxes in flight in the spawner's pipe
HOSTNAME_MAX = 63  # what sethostname and Kubernetes allow
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# apply() runs the actions phase by phase: what frees comes before what takes.
PHASES = (('delete', 'recreate'), ('forget_record', 'unbridge', 'forget_folder'),
          ('forget_netns', 'forget_cgroup'),
          ('release',),
          ('forget_ipam', 'remove_folder', 'remove_cgroups'), ('reserve',), ('create', 'recreate'),
          ('restart', 'set_mtu', 'set_pids', 'relabel'), ('guard', 'delete_table'))
SHOWN = ('ip', 'netns', 'veth', 'mac', 'uid')  # what the module returns of each pod
TRANSIENT = ('problems', 'dead', 'oom', 'mtu_now', 'pids_max', 'key')  # read from the kernel, never saved


def spec_hash(pod):
    """What, when changed, needs a new sandbox: containers, not labels."""
    return hashlib.sha256(json.dumps(pod['containers'], sort_keys=True).encode()).hexdigest()[:16]


def veth_name(uid):
    """Host side of a pod's veth: `veth<8 hex>` as CNI plugins name it."""
    return 'veth' + hashlib.sha256(uid.encode()).hexdigest()[:8]


def mtu_seen(veth_mtu, eth0_mtu, want):
    """The MTU a pod has, for the plan: the first of its veth's ends that
    differs from want (both are set together), else want."""
    return veth_mtu if veth_mtu != want else eth0_mtu


def hostname(pod):
    """The planner's hostname, else the name cut to what the kernel takes."""
    return pod.get('hostname') or pod['name'][:HOSTNAME_MAX].rstrip('-.')


@dataclass
class NodeState:
    """Everything plan() needs, read once."""
    pods: dict        # key -> record, with problems, dead, mtu_now and key added
    sandboxes: list   # cni-* network namespaces bound on the node
    ipam: dict        # address -> owner uid
    stale_ipam: list  # folders of earlier pod CIDRs (state absent: every state folder of pods)
    guard: object     # the source guard table as nft shows it, or None
    unreadable: dict = field(default_factory=dict)  # path -> why: records no run can trust
    foreign_ports: list = field(default_factory=list)  # ports of cni0 that are no pod's veth
    sole_bridge: bool = True  # cni0 is the node's only bridge (srcguard.ruleset)
    cgroups: dict = field(default_factory=dict)  # pod uid -> its cgroup, of every pod podnet started
    foreign_cgroups: bool = False  # kubepods holds pods podnet did not start (a kubelet's): never touched
    folders: list = field(default_factory=list)  # the pods' folders (logs, containers' writable folders)


class NodePods:
    """pod_cidr None: state absent, which removes every pod without checking it."""

    def __init__(self, state_dir, pod_cidr, mtu, run, view=(), pids_limit=cgroups.DEFAULT_PIDS_LIMIT,
                 hierarchies=None):
        """hierarchies: cgroups.read_hierarchies() unless given ({}: none)."""
        self.state_dir = state_dir
        self.pids_limit = pids_limit
        self.hierarchies = cgroups.read_hierarchies() if hierarchies is None else hierarchies
        self.pods_dir = os.path.join(state_dir, PODS_DIR)
        self.ipam = HostLocalIpam(state_dir, pod_cidr) if pod_cidr else None
        self.prefixlen = pod_cidr and ipaddress.IPv4Network(pod_cidr).prefixlen
        self.mtu = mtu
        self.run = run
        self.view = list(view)

    # -- reading -----------------------------------------------------------
    def _state_path(self, key):
        return os.path.join(self.pods_dir, key.replace('/', '_') + '.json')

    def read_current(self):
        records, unreadable = read_pod_records(self.state_dir)
        with rtnl() as ipr:
            links = links_by_name(ipr)
        bridge = links[BRIDGE]['index'] if BRIDGE in links else None
        for key, record in records.items():
            record['key'] = key
            self._check(record, links, bridge)
        owners = self.ipam.owners()
        return NodeState(records, list_netns(), owners, self.ipam.stale_folders(),
                         nft.current_table(self.run, srcguard.FAMILY, srcguard.TABLE), unreadable,
                         foreign_ports(links, bridge, records), sole_bridge(links),
                         *self._own_cgroups(records, set(owners.values())), folders=self._folders())

    def _folders(self):
        try:
            names = os.listdir(self.pods_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        paths = (os.path.join(self.pods_dir, n) for n in names)
        return sorted(p for p in paths if os.path.isdir(p) and not os.path.islink(p))

    def _own_cgroups(self, records, allocated):
        """({uid: cgroup} of the pods podnet started, whether kubepods holds
        others). podnet's are the ones its records or IPAM files name: IPAM
        names a pod before its cgroup is made, so a run cut short leaves
        none unnamed; a kubelet's pods on the same machine are never ours."""
        found = cgroups.pod_folders(self.hierarchies)
        own = {r['uid'] for r in records.values()} | allocated
        return {u: p for u, p in found.items() if u in own}, bool(set(found) - own)

    def read_remains(self):
        """For state absent: the records (unchecked), sandboxes, the guard
        and the state folders of pods (records and logs, IPAM)."""
        records, unreadable = read_pod_records(self.state_dir)
        for key, record in records.items():
            record.update(key=key, problems=[], dead=[], oom=[], mtu_now=None)
        folders = [d for d in (self.pods_dir, os.path.join(self.state_dir, IPAM_DIR))
                   if os.path.isdir(d)]
        own, foreign = self._own_cgroups(records, HostLocalIpam.every_owner(self.state_dir))
        return NodeState(records, list_netns(), {}, folders,
                         nft.current_table(self.run, srcguard.FAMILY, srcguard.TABLE), unreadable,
                         cgroups=own, foreign_cgroups=foreign)

    def _check(self, state, links, bridge):
        veth = links.get(state['veth'])
        state['problems'] = self._sandbox_problems(state, veth, bridge)
        state['dead'] = sorted(c for c, p in state['containers'].items()
                               if not Process.from_dict(p).alive())
        state['oom'] = [c for c in state['dead'] if self._cgroups(state).oom_kills(c)]
        state['pids_max'] = self._cgroups(state).read('pids', 'pids.max')
        state['mtu_now'] = veth.get('IFLA_MTU') if veth else None
        if not state['problems']:
            inside = read_inside(state['netns'])
            state['problems'] = self._inside_problems(state, inside, veth)
            if inside:
                state['mtu_now'] = mtu_seen(state['mtu_now'], inside['mtu'], self.mtu)

    def _sandbox_problems(self, state, veth, bridge):
        pause = Process.from_dict(state['pause'])
        if not pause.alive():
            return ['pause process gone']
        if not os.path.exists(netns_path(state['netns'])):
            return ['sandbox %s gone' % state['netns']]
        if netns_inode(pause.pid) != os.stat(netns_path(state['netns'])).st_ino:
            return ['pause process is not in sandbox %s' % state['netns']]
        if veth is None or bridge is None or veth.get('IFLA_MASTER') != bridge:
            return ['%s not on %s' % (state['veth'], BRIDGE)]
        if ipaddress.IPv4Address(state['ip']) not in self.ipam.network:
            return ['address %s is outside the pod CIDR %s' % (state['ip'], self.ipam.network)]
        if self.hierarchies and not self._cgroups(state).exists():
            return ['its cgroup %s is gone' % state['cgroup'] if state.get('cgroup')
                    else 'no cgroup of its own (an older podnet made it)']
        return []

    def _inside_problems(self, state, inside, veth):
        """The CNI CHECK of eth0 inside the sandbox."""
        if inside is None:
            return ['eth0 gone from %s' % state['netns']]
        want = '%s/%d' % (state['ip'], self.prefixlen)
        found = []
        if inside['addresses'] != [want]:
            found.append('eth0 has %s, want %s' % (', '.join(inside['addresses']) or 'no address', want))
        if inside['gateways'] != [str(self.ipam.gateway)]:
            found.append('default route via %s, want via %s' % (
                ', '.join(inside['gateways']) or 'nothing', self.ipam.gateway))
        if not inside['up']:
            found.append('eth0 is down')
        if inside['peer'] != veth['index'] or inside['mac'] != state['mac']:
            found.append('eth0 is not the %s peer with MAC %s' % (state['veth'], state['mac']))
        return found

    # -- planning ----------------------------------------------------------
    def plan(self, current, wanted):
        """[Action] in the order of PHASES within apply()."""
        records = current.pods
        actions = [Action('delete', k, 'not wanted on this node') for k in sorted(records)
                   if k not in wanted]
        actions += [Action('forget_record', path, 'unreadable (%s): its pod is made again' % why)
                    for path, why in sorted(current.unreadable.items())]
        actions += [Action('unbridge', port, 'on %s, and no pod\'s veth' % BRIDGE)
                    for port in current.foreign_ports]
        kept = {}
        for key, pod in sorted(wanted.items()):
            state = records.get(key)
            if state is None:
                actions.append(Action('create', key, 'new pod'))
            elif state['spec_hash'] != spec_hash(pod):
                actions.append(Action('recreate', key, 'containers changed'))
            elif state['problems']:
                actions.append(Action('recreate', key, '; '.join(state['problems'])))
            else:
                kept[key] = state
        addresses = self._address_actions(kept, current.ipam)
        recreated = {a.target for a in addresses if a.verb == 'recreate'}
        for key in sorted(set(kept) - recreated):
            actions += self._repairs(key, wanted[key], kept[key])
        actions += addresses + self._sweep(current)
        return actions + self._guard_action(current, kept, actions)

    def plan_absent(self, current):
        """Every pod, sandbox, state folder of pods and the guard, removed."""
        actions = [Action('delete', k, 'state absent') for k in sorted(current.pods)]
        actions += [a for a in self._sweep(current) if a.verb in ('forget_netns', 'forget_cgroup')]
        actions += [Action('remove_folder', folder, 'state absent') for folder in current.stale_ipam]
        if cgroups.kubepods_folders(self.hierarchies) and not current.foreign_cgroups:
            actions.append(Action('remove_cgroups', cgroups.KUBEPODS, 'state absent'))
        return actions + nft.plan_delete(srcguard.TABLE, current.guard)

    def _repairs(self, key, pod, state):
        found = []
        # The exit status of a container is its node init's to reap, not
        # ours to see: OnFailure restarts like Always; Never leaves it down.
        if state['dead'] and pod.get('restart_policy', 'Always') != 'Never':
            found.append(Action('restart', key, 'container %s' % ', '.join(
                c + (' exited (OOMKilled)' if c in state.get('oom', ()) else ' exited') for c in state['dead'])))
        if state['mtu_now'] != self.mtu:
            found.append(Action('set_mtu', key, 'MTU %s, want %s' % (state['mtu_now'], self.mtu)))
        want = cgroups.pids_text(self.pids_limit)
        if state.get('pids_max') not in (None, want):
            found.append(Action('set_pids', key, 'pids.max %s, want %s' % (state['pids_max'], want)))
        if state.get('labels') != pod.get('labels', {}):
            found.append(Action('relabel', key, 'labels changed'))
        return found

    def _address_actions(self, kept, owners):
        """Two kept pods on one address: the one IPAM does not name gets a
        new sandbox. A kept pod whose IPAM file is gone gets it back."""
        found, holder = [], {}
        for key, state in sorted(kept.items(), key=lambda item: owners.get(item[1]['ip']) != item[1]['uid']):
            if state['ip'] in holder:
                found.append(Action('recreate', key, 'address %s is also held by %s' % (
                    state['ip'], holder[state['ip']])))
                continue
            holder[state['ip']] = key
            owner = owners.get(state['ip'])
            if owner != state['uid']:
                found.append(Action('reserve', key, 'IPAM lost address %s' % state['ip'] if owner is None
                                    else 'IPAM file of %s: %s' % (state['ip'], owner)))
        return found

    def _sweep(self, current):
        """What no record owns: sandboxes and addresses left by a run cut short."""
        known = {s['netns'] for s in current.pods.values()}
        held = {(s['ip'], s['uid']) for s in current.pods.values()}
        uids = {s['uid'] for s in current.pods.values()}
        owned = {self._log_dir(key) for key in current.pods}
        return ([Action('forget_netns', n, 'no pod owns it') for n in current.sandboxes if n not in known]
                + [Action('forget_folder', f, 'no pod owns it (its containers wrote there)')
                   for f in current.folders if f not in owned]
                + [Action('forget_cgroup', path, 'no pod owns it: what runs there is killed')
                   for uid, path in sorted(current.cgroups.items()) if uid not in uids]
                + [Action('release', address, 'no pod of %s holds it' % owner)
                   for address, owner in sorted(current.ipam.items()) if (address, owner) not in held]
                + [Action('forget_ipam', folder, 'an earlier pod CIDR') for folder in current.stale_ipam])

    def _guard_action(self, current, kept, actions):
        if any(a.verb in ('create', 'recreate', 'delete') for a in actions):
            return [Action('guard', srcguard.TABLE, 'pods changed')]
        if nft.needs_update(current.guard, *srcguard.ruleset(kept.values(), current.sole_bridge)):
            return [Action('guard', srcguard.TABLE, 'the source guard differs from the pods')]
        return []

    # -- applying ----------------------------------------------------------
    def apply(self, actions, current, wanted):
        """Phase by phase (PHASES): deletes and creates in batches through
        the spawner, every other verb by its method do_<verb>."""
        records = current.pods
        spawn = Spawner()
        failed = None
        try:
            for phase in PHASES:
                todo = [a.target for a in actions if a.verb in phase]
                if phase == ('delete', 'recreate'):
                    self._delete_many(todo, records)
                elif phase == ('create', 'recreate'):
                    try:
                        self._create_many(todo, records, wanted, spawn)
                    except SandboxError as exc:  # the pods made still get their guard
                        failed = exc
                else:
                    for action in (a for a in actions if a.verb in phase):
                        getattr(self, 'do_' + action.verb)(action.target, current, wanted, spawn)
        finally:
            spawn.close()
        if failed:
            raise failed

    def _delete_many(self, keys, records):
        """Kill every process first, then remove links, sandboxes, addresses:
        the kernel tears the namespaces down together."""
        states = [records.pop(k) for k in keys]
        for state in states:
            for proc in list(state['containers'].values()) + [state['pause']]:
                if proc:
                    Process.from_dict(proc).kill()
        kill_holders([state['netns'] for state in states])  # what no record names, or names wrong
        with rtnl() as ipr:
            delete_links(ipr, [state['veth'] for state in states])
        for key, state in zip(keys, states):
            remove_netns(state['netns'])
            self._cgroups(state).remove()
            if state['ip'] and self.ipam:  # state absent removes IPAM whole
                self.ipam.release(state['ip'], state['uid'])
            self._forget(key)

    def _create_many(self, keys, records, wanted, spawn):
        """Pipelined: the spawner makes the next sandboxes while this process
        records the last ones. A pod that fails is removed; the others stay."""
        failed = []
        with rtnl() as ipr:
            bridge = link_index(ipr, BRIDGE)
        if keys and bridge is None:
            raise PodnetError(BRIDGE, 'no pod bridge on this node: run the network role first')
        taken = {s['ip'] for s in records.values()}
        for start in range(0, len(keys), BATCH):
            batch = [self._new_state(k, wanted[k]) for k in keys[start:start + BATCH]]
            try:
                for state in batch:
                    state['ip'] = self.ipam.allocate(state['uid'], taken, record=False)
                    taken.add(state['ip'])
            finally:  # recorded before any sandbox exists, also when the CIDR runs out
                self.ipam.record_last()
            for state in batch:
                self._submit_sandbox(spawn, state, wanted[state['key']], bridge)
            for state in batch:
                self._sandbox_ready(spawn, state, wanted[state['key']], failed)
            for state in batch:
                self._containers_ready(spawn, state, wanted[state['key']], failed)
                if state['key'] in dict(failed):
                    self._teardown(state)
                else:
                    self._save(state['key'], state)
                    records[state['key']] = state
        if failed:
            raise SandboxError(', '.join(k for k, _ in failed), '; '.join(e for _, e in failed))

    def _new_state(self, key, pod):
        uid = str(uuid.uuid4())
        return {'key': key, 'namespace': pod['namespace'], 'name': pod['name'], 'uid': uid,
                'netns': 'cni-' + uid, 'cgroup': cgroups.pod_path(pod.get('qos', 'BestEffort'), uid),
                'veth': veth_name(uid), 'mac': names.stable_mac('pod', uid),
                'spec_hash': spec_hash(pod), 'labels': pod.get('labels', {}),
                'ports': [port for c in pod['containers'] for port in c.get('ports') or []],
                'commands': {c['name']: c['argv'] for c in pod['containers']},
                'containers': {}, 'pause': None, 'ip': None}

    def _cgroups(self, state):
        return cgroups.PodCgroups(self.hierarchies, state.get('cgroup') or '')

    def _make_cgroups(self, state, pod, containers, sandbox=False):
        """The pod's cgroups with its limits, and fresh ones for these
        containers (and the sandbox's pause)."""
        leaves = {c['name']: cgroups.container_limits(c.get('resources')) for c in containers}
        if sandbox:
            leaves[cgroups.SANDBOX] = cgroups.Limits()
        self._cgroups(state).create(cgroups.pod_limits(pod['containers'], self.pids_limit), leaves)

    def _submit_sandbox(self, spawn, state, pod, bridge):
        """The spawner makes the sandbox and wires it: eth0 with the pod's
        address and default route inside, veth<hex> on cni0 outside. The
        pod's cgroups are made here, with its limits."""
        self._make_cgroups(state, pod, pod['containers'], sandbox=True)
        spawn.submit(state['key'], op='sandbox', netns=netns_path(state['netns']),
                     hostname=hostname(pod), veth=state['veth'], mac=state['mac'],
                     cidr='%s/%d' % (state['ip'], self.prefixlen), mtu=self.mtu,
                     gateway=str(self.ipam.gateway), bridge=bridge,
                     broadcast=str(self.ipam.network.broadcast_address))

    def _sandbox_ready(self, spawn, state, pod, failed):
        try:
            state['pause'] = spawn.collect().as_dict()
            spawner.join_cgroups(self._cgroups(state).dirs(cgroups.SANDBOX), state['pause']['pid'])
            self._private_folder(state['key'])
        except (PodnetError, OSError) as exc:
            failed.append((state['key'], str(exc)))
            return
        for container in pod['containers']:
            self._submit_container(spawn, pod, state, container)

    def _containers_ready(self, spawn, state, pod, failed):
        if state['pause'] is None or state['key'] in dict(failed):
            return
        for container in pod['containers']:
            try:
                state['containers'][container['name']] = spawn.collect().as_dict()
            except SandboxError as exc:
                failed.append((state['key'], str(exc)))

    def _submit_container(self, spawn, pod, state, container):
        env = {'PATH': DEFAULT_PATH, 'HOSTNAME': hostname(pod)}
        env.update(container.get('env') or {})
        spawn.submit('%s container %s' % (state['key'], container['name']), op='container',
                     netns=netns_path(state['netns']), pause=state['pause']['pid'],
                     argv=container['argv'], env=env, cwd=container.get('working_dir') or '/',
                     caps=container_caps(container), view=self.view,
                     log=os.path.join(self._log_dir(state['key']), container['name'] + '.log'),
                     scratch=self._scratch(state['key'], container['name']),
                     cgroups=self._cgroups(state).dirs(container['name']),
                     cgroupfs=[(h.path, 'cgroup' if h.version == 1 else 'cgroup2', h.options)
                               for h in cgroups.distinct(self.hierarchies)],
                     seccomp=container.get('seccomp', 'RuntimeDefault') == 'RuntimeDefault')

    def _scratch(self, key, container):
        """A container's writable folders (/tmp, /var/tmp, /run), in its pod's."""
        return os.path.join(self._log_dir(key), container)

    def do_restart(self, key, current, wanted, spawn):
        state = current.pods[key]
        pod = wanted[key]
        try:
            for container in pod['containers']:
                if container['name'] in state['dead']:
                    remove_tree(self._scratch(key, container['name']))
                    self._make_cgroups(state, pod, [container])
                    self._submit_container(spawn, pod, state, container)
                    state['containers'][container['name']] = spawn.collect().as_dict()
        finally:  # the containers that did start are recorded, so never started twice
            self._save(key, state)

    def do_set_mtu(self, key, current, wanted, spawn):
        state = current.pods[key]
        with rtnl() as ipr:
            ipr.link('set', index=link_index(ipr, state['veth']), mtu=self.mtu)
        with rtnl(netns_path(state['netns'])) as ipr:
            ipr.link('set', index=link_index(ipr, 'eth0'), mtu=self.mtu)

    def do_set_pids(self, key, current, wanted, spawn):
        self._cgroups(current.pods[key]).set_pids(self.pids_limit)

    def do_relabel(self, key, current, wanted, spawn):
        current.pods[key]['labels'] = wanted[key].get('labels', {})
        self._save(key, current.pods[key])

    def do_reserve(self, key, current, wanted, spawn):
        self.ipam.reserve(current.pods[key]['ip'], current.pods[key]['uid'])

    def do_forget_netns(self, netns, current, wanted, spawn):
        """A sandbox no record owns (a create cut short): stop its processes;
        its veth goes with the namespace, its address with a release."""
        kill_holders([netns])
        remove_netns(netns)

    def do_forget_cgroup(self, path, current, wanted, spawn):
        cgroups.PodCgroups(self.hierarchies, path).remove()

    def do_remove_cgroups(self, _, current, wanted, spawn):
        cgroups.prune_kubepods(self.hierarchies)

    def do_forget_folder(self, path, current, wanted, spawn):
        remove_tree(path)

    def do_forget_record(self, path, current, wanted, spawn):
        remove_any(path)

    def do_unbridge(self, port, current, wanted, spawn):
        with rtnl() as ipr:
            index = link_index(ipr, port)
            if index is not None:
                ipr.link('set', index=index, master=0)

    def do_forget_ipam(self, folder, current, wanted, spawn):
        remove_tree(folder)

    do_remove_folder = do_forget_ipam

    def do_release(self, address, current, wanted, spawn):
        self.ipam.release(address)

    def do_guard(self, _, current, wanted, spawn):
        chains, rules = srcguard.ruleset(current.pods.values(), current.sole_bridge)
        nft.apply(self.run, nft.table_commands(srcguard.FAMILY, srcguard.TABLE, chains, rules),
                  srcguard.TABLE)

    def do_delete_table(self, _, current, wanted, spawn):
        nft.apply(self.run, nft.delete_commands(srcguard.FAMILY, srcguard.TABLE), srcguard.TABLE)

    def _teardown(self, state):
        """Undo a pod that failed half-way; every step tolerates what is gone."""
        for proc in list(state['containers'].values()) + [state['pause']]:
            if proc:
                Process.from_dict(proc).kill()
        kill_holders([state['netns']])
        with rtnl() as ipr:
            delete_link(ipr, state['veth'])
        remove_netns(state['netns'])
        self._cgroups(state).remove()
        if state['ip']:
            self.ipam.release(state['ip'], state['uid'])
        remove_tree(self._log_dir(state['key']))

    def _forget(self, key):
        try:
            os.unlink(self._state_path(key))
        except FileNotFoundError:
            pass
        remove_tree(self._log_dir(key))

    def _log_dir(self, key):
        return os.path.join(self.pods_dir, key.replace('/', '_'))

    def _private_folder(self, key):
        """The pod's folder, root's alone (0700): its containers' writable
        folders are in it, and a container is root with CHOWN, FSETID and
        MKNOD: a setuid program or a device node it leaves there must be
        out of reach of the node's other users, as a runtime's layers are."""
        folder = self._log_dir(key)
        remove_tree(folder)  # a new pod starts with nothing an earlier one left
        os.makedirs(folder, mode=0o700)

    def _save(self, key, state):
        keep = {k: v for k, v in state.items() if k not in TRANSIENT}
        write_atomic(self._state_path(key), json.dumps(keep, indent=1, sort_keys=True))

    # -- showing -----------------------------------------------------------
    def show(self, current):
        """Pods as the diff shows them now."""
        return {k: _view(s.get('commands'), s['dead'], s['problems'], s.get('labels'))
                for k, s in current.pods.items()}

    def show_wanted(self, current, wanted):
        """The wanted pods as the diff shows them, after a run from current."""
        return {k: _view({c['name']: c['argv'] for c in pod['containers']}, _left_down(current, k, pod),
                         (), pod.get('labels', {})) for k, pod in wanted.items()}


def _left_down(current, key, pod):
    """Containers a restartPolicy of Never keeps exited."""
    record = current.pods.get(key)
    if pod.get('restart_policy') != 'Never' or not record or record['spec_hash'] != spec_hash(pod):
        return ()
    return record['dead']


def foreign_ports(links, bridge, records):
    """Ports of the pod bridge that no pod record names: a hand-made link,
    or the veth of a sandbox no record owns (swept with it)."""
    if bridge is None:
        return []
    veths = {r['veth'] for r in records.values()}
    return sorted(name for name, link in links.items()
                  if link.get('IFLA_MASTER') == bridge and name not in veths)


def sole_bridge(links):
    return not any(link.get(('IFLA_LINKINFO', 'IFLA_INFO_KIND')) == 'bridge'
                   for name, link in links.items() if name != BRIDGE)


def _view(commands, dead, problems, labels):
    shown = {'containers': {name: '%s (%s)' % (' '.join(argv), 'exited' if name in dead else 'running')
                            for name, argv in (commands or {}).items()},
             'labels': labels or {}}
    if problems:
        shown['broken'] = list(problems)
    return shown


def container_caps(container):
    """Capability numbers a container keeps: the planner's list, else the
    container runtimes' default set."""
    return sorted(caps.NUMBERS[name] for name in container.get('capabilities', caps.RUNTIME_DEFAULT))


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


class PodsReconciler(Reconciler):
    """The pods of one node as podnet_pods reconciles them: the wanted
    pods by namespace/name, or none with state absent."""
    subject = 'pods of this node'

    def __init__(self, node, wanted, absent=False, check_mode=False):
        self.node, self.pods, self.absent, self.check_mode = node, wanted, absent, check_mode
        self.lock_dir = node.state_dir

    def read(self):
        return self.node.read_remains() if self.absent else self.node.read_current()

    def plan(self, current):
        return self.node.plan_absent(current) if self.absent else self.node.plan(current, self.pods)

    def show(self, state):
        return self.node.show(state)

    def show_wanted(self, current):
        return self.node.show_wanted(current, self.pods)

    def apply(self, actions, current):
        self.node.apply(actions, current, self.pods)

    def result(self, current, actions):
        new = sorted(a.target for a in actions if a.verb in ('create', 'recreate'))
        return {'pods': {k: {f: s.get(f) for f in SHOWN} for k, s in current.pods.items()},
                'pending': new if self.check_mode else [],
                'ips': {k: s.get('ip') for k, s in current.pods.items()}}

    def warnings(self, current, result):
        lacking = [c for c in cgroups.CONTROLLERS if c not in self.node.hierarchies]
        if lacking and not self.absent:
            return ['this node has no %s cgroup controller: its pods run without those limits' % ', '.join(lacking)]
        return []
