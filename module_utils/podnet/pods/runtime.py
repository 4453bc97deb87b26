"""Carrying out the plan for the pods of one node: the spawner makes
sandboxes and containers, this process makes their cgroups and records.

apply() runs the actions phase by phase (PHASES): what frees comes before
what takes, but for the old pods of a rollout, retired once the new ones
run (and kept when a new one failed). Deletes and creates go in batches, creates pipelined through
the spawner; every other verb is a method do_<verb>(action, current).
A pod with init containers leaves the pipeline after its sandbox: they run
one at a time (initcontainers.py) once the batch's other pods started, and
its containers start after them."""
import os
import time

from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.statefile import remove_any, remove_tree
from ansible.module_utils.podnet.kernel import caps, cgroups, nft
from ansible.module_utils.podnet.kernel.netlink import delete_link, delete_links, link_index, rtnl
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.pods import chain, initcontainers, podfiles, spawner, srcguard
from ansible.module_utils.podnet.pods.health import pod_cgroups
from ansible.module_utils.podnet.pods.ipam import attachment_ports
from ansible.module_utils.podnet.pods.records import KEY, hostname, new_record
from ansible.module_utils.podnet.pods.sandbox import (
    Process,
    SandboxError,
    SpawnerClient,
    kill_holders,
    netns_path,
    remove_netns,
)

BATCH = 32  # sandboxes in flight in the spawner's pipe
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
PHASES = (('delete', 'recreate'), ('forget_record', 'unbridge', 'forget_folder', 'forget_failed'),
          ('forget_netns', 'forget_cgroup'),
          ('release',),
          ('forget_ipam', 'remove_folder', 'remove_cgroups'), ('reserve',), ('create', 'recreate'), ('retire',),
          ('restart', 'set_mtu', 'set_pids', 'relabel'), ('guard', 'delete_table'))


def container_caps(container):
    """Capability numbers a container keeps: the planner's list, else the
    container runtimes' default set."""
    return sorted(caps.NUMBERS[name] for name in container.get('capabilities', caps.RUNTIME_DEFAULT))


def container_env(pod, container):
    """The environment a container's processes start with."""
    env = {'PATH': DEFAULT_PATH, 'HOSTNAME': hostname(pod)}
    env.update(container.get('env') or {})
    return env


def confinement(container):
    """What confines a container's processes, and its exec probes: the
    capabilities it keeps, seccomp, its user and no_new_privs."""
    return {'caps': container_caps(container),
            'seccomp': container.get('seccomp', 'RuntimeDefault') == 'RuntimeDefault',
            'user': container.get('user'), 'no_new_privs': container.get('no_new_privs', False)}


STOP_WAIT = 5.0  # seconds a killed container's PID namespace gets to go


def stop(process):
    """Kill a container (the PID 1 of its namespace: the kernel ends the
    rest) and wait until it is gone."""
    process.kill()
    deadline = time.monotonic() + STOP_WAIT
    while process.alive() and time.monotonic() < deadline:
        time.sleep(0.01)


class PodRuntime:
    """store: the RecordStore; ipam: the HostLocalIpam (None with state
    absent, which removes IPAM whole); view: the paths containers see
    besides the system folders; run: a command runner, for nft. chain: the
    PodChain that wires pods (chain.py), None when podnet wires them;
    cni_path: where the plugins of a list that wired a pod are, for its DEL."""

    def __init__(self, store, ipam, mtu, pids_limit, hierarchies, view, run):
        self.store, self.ipam, self.mtu, self.pids_limit = store, ipam, mtu, pids_limit
        self.hierarchies, self.view, self.run = hierarchies, list(view), run
        self.init_timeout = initcontainers.DEFAULT_TIMEOUT  # seconds a try of an init container may run
        self._wanted, self._spawn = {}, None  # while apply() runs
        self.chain, self.cni_path = None, chain.DEFAULT_CNI_PATH

    def apply(self, actions, current, wanted):
        self._wanted, self._spawn = wanted, SpawnerClient()
        failed = None
        try:
            for phase in PHASES:
                todo = [a.target for a in actions if a.verb in phase]
                if phase == ('retire',):
                    self._delete_many([] if failed else todo, current.pods)
                elif phase == ('delete', 'recreate'):
                    self._delete_many(todo, current.pods)
                elif phase == ('create', 'recreate'):
                    try:
                        self._create_many(todo, current)
                    except SandboxError as exc:  # the pods made still get their guard
                        failed = exc
                else:
                    for action in (a for a in actions if a.verb in phase):
                        getattr(self, 'do_' + action.verb)(action, current)
        finally:
            self._spawn.close()
        if failed:
            raise failed

    # -- deleting and creating, in batches -----------------------------------
    def _delete_many(self, keys, records):
        """Kill every process first, then remove links, sandboxes, addresses:
        the kernel tears the namespaces down together."""
        gone = [records.pop(k) for k in keys]
        for record in gone:
            for proc in list(record['containers'].values()) + [record['pause']]:
                if proc:
                    Process.from_dict(proc).kill()
        kill_holders([record['netns'] for record in gone])  # what no record names, or names wrong
        for record in gone:  # the chain removes what it made, the sandbox still there
            chain.unwire(record, self.chain, self.store.state_dir, self.cni_path)
        with rtnl() as ipr:
            delete_links(ipr, [record['veth'] for record in gone])
        for key, record in zip(keys, gone):
            remove_netns(record['netns'])
            pod_cgroups(self.hierarchies, record).remove()
            if record['ip'] and self.ipam and not record.get('cni'):  # state absent removes IPAM whole
                self.ipam.release(record['ip'], record['uid'])
            self.store.forget(key)

    def _create_many(self, keys, current):
        """Pipelined: the spawner makes the next sandboxes while this process
        records the last ones. A pod that fails is removed, or, if it ends
        Failed (initcontainers.ends_failed), remembered so; the others stay."""
        failed, ended, records = [], [], current.pods
        with rtnl() as ipr:
            bridge = link_index(ipr, BRIDGE)
        if keys and bridge is None and self.chain is None:
            raise PodnetError(BRIDGE, 'no pod bridge on this node: run the network role first')
        taken = {r['ip'] for r in records.values()}
        for start in range(0, len(keys), BATCH):
            batch = [new_record(k, self._wanted[k]) for k in keys[start:start + BATCH]]
            self._allocate(batch, taken)
            for record in batch:
                self._submit_sandbox(record, bridge)
            for record in batch:
                self._sandbox_ready(record, failed)
            for record in batch:
                self._containers_ready(record, failed)
            for record in batch:  # the spawner's pipe is empty: one request at a time
                self._init_then_start(record, failed, ended)
            for record in batch:
                self._keep_or_remove(record, current, dict(failed), dict(ended))
        if failed:
            raise SandboxError(', '.join(key for key, why in failed), '; '.join(why for key, why in failed))

    def _keep_or_remove(self, record, current, failed, ended):
        key = record[KEY]
        if key in failed or key in ended:
            self._teardown(record)
        else:
            self.store.save(record)
            current.pods[key] = record
        if key in ended:
            self.store.save_failed(key, record['spec_hash'], ended[key])
            current.failed[key] = {'spec_hash': record['spec_hash'], 'reason': ended[key]}

    def _allocate(self, batch, taken):
        """Addresses from podnet's IPAM, unless a chain wires the pods (its
        IPAM plugin gives them on ADD)."""
        if self.chain is not None:
            return
        try:
            for record in batch:
                record['ip'] = self.ipam.allocate(record['uid'], taken, record=False)
                taken.add(record['ip'])
        finally:  # recorded before any sandbox exists, also when the CIDR runs out
            self.ipam.record_last()

    def _make_cgroups(self, record, containers, sandbox=False):
        """The pod's cgroups with its limits, and fresh ones for these
        containers (and the sandbox's pause)."""
        leaves = {c['name']: cgroups.container_limits(c.get('resources')) for c in containers}
        if sandbox:
            leaves[cgroups.SANDBOX] = cgroups.Limits()
        pod = self._wanted[record[KEY]]
        limits = cgroups.pod_limits(pod['containers'], self.pids_limit, pod.get('init_containers') or ())
        pod_cgroups(self.hierarchies, record).create(limits, leaves)

    def _submit_sandbox(self, record, bridge):
        """The spawner makes the sandbox and wires it: eth0 with the pod's
        address and default route inside, veth<hex> on cni0 outside. The
        pod's cgroups are made here, with its limits."""
        pod = self._wanted[record[KEY]]
        self._make_cgroups(record, pod['containers'], sandbox=True)
        if self.chain is not None:  # the bare sandbox: the chain wires it once pause holds it
            self._spawn.submit(record[KEY], op='sandbox', netns=netns_path(record['netns']), hostname=hostname(pod))
            return
        self._spawn.submit(record[KEY], op='sandbox', netns=netns_path(record['netns']),
                           hostname=hostname(pod), veth=record['veth'], mac=record['mac'],
                           cidr='%s/%d' % (record['ip'], self.ipam.network.prefixlen), mtu=self.mtu,
                           gateway=str(self.ipam.gateway), bridge=bridge,
                           broadcast=str(self.ipam.network.broadcast_address))

    def _sandbox_ready(self, record, failed):
        try:
            record['pause'] = self._spawn.collect().as_dict()
            spawner.join_cgroups(pod_cgroups(self.hierarchies, record).dirs(cgroups.SANDBOX),
                                 record['pause']['pid'])
            if self.chain is not None:
                self.chain.add(record)
            self.store.make_folder(record[KEY])
            pod = self._wanted[record[KEY]]
            podfiles.write(self.store.folder(record[KEY]), pod, record['ip'], hostname(pod))
        except (PodnetError, OSError) as exc:
            failed.append((record[KEY], str(exc)))
            return
        if initcontainers.names(self._wanted[record[KEY]]):
            return  # its containers start after its init containers (_init_then_start)
        for container in self._wanted[record[KEY]]['containers']:
            self._submit_container(record, container)

    def _containers_ready(self, record, failed):
        if record['pause'] is None or record[KEY] in dict(failed) or initcontainers.names(self._wanted[record[KEY]]):
            return
        self._collect_containers(record, failed)

    def _collect_containers(self, record, failed):
        for container in self._wanted[record[KEY]]['containers']:
            try:
                record['containers'][container['name']] = self._spawn.collect().as_dict()
            except SandboxError as exc:
                failed.append((record[KEY], str(exc)))

    def _init_then_start(self, record, failed, ended):
        """A pod with init containers, with nothing else in the spawner's
        pipe: they run to completion, one after another, then its
        containers start. One that does not complete fails the pod (in
        failed), or under restartPolicy Never ends it Failed (in ended)."""
        key, pod = record[KEY], self._wanted[record[KEY]]
        if not initcontainers.names(pod) or record['pause'] is None or key in dict(failed):
            return
        try:
            record['init_containers'] = initcontainers.run_all(key, pod, lambda c: self._run_init(record, c),
                                                               self.init_timeout)
        except initcontainers.InitFailed as exc:
            last_words = initcontainers.last_words(self._log(key, exc.container))
            if initcontainers.ends_failed(pod):
                ended.append((key, exc.message + last_words))
            else:
                failed.append((key, str(exc) + last_words))
            return
        except SandboxError as exc:  # it could not start: as a container that could not
            failed.append((key, str(exc)))
            return
        for container in pod['containers']:
            self._submit_container(record, container)
        self._collect_containers(record, failed)

    def _run_init(self, record, container):
        """One try of an init container, in a fresh cgroup and writable
        folders as any container start; its exit code. Its cgroup goes
        when it ends (with whatever it left)."""
        key = record[KEY]
        remove_tree(self.store.scratch(key, container['name']))
        self._make_cgroups(record, [container])
        try:
            return self._spawn.run('%s init container %s' % (key, container['name']), timeout=self.init_timeout,
                                   **self._container_request(record, container))[1]
        finally:
            for folder in pod_cgroups(self.hierarchies, record).dirs(container['name']):
                cgroups.kill_and_remove(folder)

    def _submit_container(self, record, container):
        self._spawn.submit('%s container %s' % (record[KEY], container['name']), op='container',
                           **self._container_request(record, container))

    def _log(self, key, container_name):
        return os.path.join(self.store.folder(key), container_name + '.log')

    def _container_request(self, record, container):
        """What the spawner needs to start a container of the pod (or an
        init container: the same confinement, the same sandbox)."""
        key, pod = record[KEY], self._wanted[record[KEY]]
        return dict(netns=netns_path(record['netns']), pause=record['pause']['pid'],
                    argv=container['argv'], env=container_env(pod, container),
                    cwd=container.get('working_dir') or '/', view=self.view,
                    binds=podfiles.binds(self.store.folder(key)) + self._mounts(container),
                    log=self._log(key, container['name']), scratch=self.store.scratch(key, container['name']),
                    cgroups=pod_cgroups(self.hierarchies, record).dirs(container['name']),
                    cgroupfs=[(h.path, 'cgroup' if h.version == 1 else 'cgroup2', h.options)
                              for h in cgroups.distinct(self.hierarchies)],
                    **confinement(container))

    def _mounts(self, container):
        """(folder, target) of the container's read-only mounts, each a
        folder of the node's state (made if missing, so that the pod can
        start before what fills it has run)."""
        found = []
        for mount in container.get('mounts') or ():
            source = os.path.join(self.store.state_dir, mount['source'])
            os.makedirs(source, mode=0o755, exist_ok=True)
            found.append((source, mount['target']))
        return found

    def _teardown(self, record):
        """Undo a pod that failed half-way; every step tolerates what is gone."""
        for proc in list(record['containers'].values()) + [record['pause']]:
            if proc:
                Process.from_dict(proc).kill()
        kill_holders([record['netns']])
        chain.unwire(record, self.chain, self.store.state_dir, self.cni_path)
        with rtnl() as ipr:
            if record['veth']:
                delete_link(ipr, record['veth'])
        remove_netns(record['netns'])
        pod_cgroups(self.hierarchies, record).remove()
        if record['ip'] and not record.get('cni'):
            self.ipam.release(record['ip'], record['uid'])
        remove_tree(self.store.folder(record[KEY]))

    # -- every other verb ------------------------------------------------------
    def do_restart(self, action, current):
        """Start again the containers that exited, and those that failed their
        liveness probe, once they are gone (their ports with them)."""
        key, health = action.target, current.health_of(action.target)
        record, restarted = current.pods[key], set(health.dead) | set(health.unhealthy)
        for name in sorted(health.unhealthy):
            stop(Process.from_dict(record['containers'][name]))
        try:
            for container in self._wanted[key]['containers']:
                if container['name'] in restarted:
                    remove_tree(self.store.scratch(key, container['name']))
                    self._make_cgroups(record, [container])
                    self._submit_container(record, container)
                    record['containers'][container['name']] = self._spawn.collect().as_dict()
        finally:  # the containers that did start are recorded, so never started twice
            self.store.save(record)

    def do_set_mtu(self, action, current):
        record = current.pods[action.target]
        with rtnl() as ipr:
            ipr.link('set', index=link_index(ipr, record['veth']), mtu=self.mtu)
        with rtnl(netns_path(record['netns'])) as ipr:
            ipr.link('set', index=link_index(ipr, 'eth0'), mtu=self.mtu)

    def do_set_pids(self, action, current):
        pod_cgroups(self.hierarchies, current.pods[action.target]).set_pids(self.pids_limit)

    def do_relabel(self, action, current):
        record = current.pods[action.target]
        record['labels'] = self._wanted[action.target].get('labels', {})
        self.store.save(record)

    def do_reserve(self, action, current):
        record = current.pods[action.target]
        self.ipam.reserve(record['ip'], record['uid'])

    def do_forget_netns(self, action, _current):
        """A sandbox no record owns (a create cut short): stop its processes;
        its veth goes with the namespace, its address with a release."""
        kill_holders([action.target])
        remove_netns(action.target)

    def do_forget_cgroup(self, action, _current):
        cgroups.PodCgroups(self.hierarchies, action.target).remove()

    def do_remove_cgroups(self, _action, _current):
        cgroups.prune_kubepods(self.hierarchies)

    def do_forget_folder(self, action, _current):
        remove_tree(action.target)

    def do_forget_record(self, action, _current):
        remove_any(action.target)

    def do_forget_failed(self, action, current):
        self.store.forget_failed(action.target)
        current.failed.pop(action.target, None)

    def do_unbridge(self, action, _current):
        with rtnl() as ipr:
            index = link_index(ipr, action.target)
            if index is not None:
                ipr.link('set', index=index, master=0)

    def do_forget_ipam(self, action, _current):
        remove_tree(action.target)

    do_remove_folder = do_forget_ipam

    def do_release(self, action, _current):
        self.ipam.release(action.target)

    def do_guard(self, _action, current):
        """The guard of the pods as this run left them, and of podnet-cni's
        attachments as the IPAM files say now: read() saw those of pods this
        run removed through a podnet-cni chain, whose DEL freed them."""
        attachments = attachment_ports(self.ipam.owners())
        chains, rules = srcguard.ruleset(current.pods.values(), current.sole_bridge, attachments)
        nft.apply(self.run, nft.table_commands(srcguard.FAMILY, srcguard.TABLE, chains, rules),
                  srcguard.TABLE)

    def do_delete_table(self, _action, _current):
        nft.apply(self.run, nft.delete_commands(srcguard.FAMILY, srcguard.TABLE), srcguard.TABLE)
