"""The plan for the pods of one node, from what was read (NodeState) to
what is wanted: pure, so check mode and the real run share it.

A pod whose containers changed or whose sandbox is broken is made again
(its init containers run again then, and only then); a container that
exited or failed its liveness probe is restarted by its restartPolicy; pods
no longer wanted are removed, and those of a workload whose new pods are
created in the same run are retired only after them (a rollout: the new
pods come up before the old ones go). IPAM is reconciled against the
records: an address a running pod holds is reserved again if its file is
gone, addresses of pods that are gone are released before any pod is
created, and two pods never share an address. What no record owns
(sandboxes, folders, cgroups, addresses a run cut short left) is swept;
addresses podnet-cni gave a runtime's containers are the runtime's to free."""
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core.reconcile import Action
from ansible.module_utils.podnet.kernel import cgroups, nft
from ansible.module_utils.podnet.node.network import BRIDGE
from ansible.module_utils.podnet.pods import initcontainers, srcguard
from ansible.module_utils.podnet.pods.health import Health
from ansible.module_utils.podnet.pods.ipam import is_attachment
from ansible.module_utils.podnet.pods.records import spec_hash

UNCHECKED = Health()  # state absent checks no pod


@dataclass
class NodeState:
    """Everything plan() needs, read once."""
    pods: dict        # key -> record, as the node keeps it
    sandboxes: list   # cni-* network namespaces bound on the node
    ipam: dict        # address -> owner uid
    stale_ipam: list  # folders of earlier pod CIDRs (state absent: every state folder of pods)
    guard: object     # the source guard table as nft shows it, or None
    unreadable: dict = field(default_factory=dict)  # path -> why: records no run can trust
    foreign_ports: list = field(default_factory=list)  # ports of cni0 that are no pod's or attachment's veth
    sole_bridge: bool = True  # cni0 is the node's only bridge (srcguard.ruleset)
    cgroups: dict = field(default_factory=dict)  # pod uid -> its cgroup, of every pod podnet started
    foreign_cgroups: bool = False  # kubepods holds pods podnet did not start (a kubelet's): never touched
    folders: list = field(default_factory=list)  # the pods' folders (logs, containers' writable folders)
    health: dict = field(default_factory=dict)  # key -> Health of each record (none with state absent)
    attachments: list = field(default_factory=list)  # [{veth, mac, ip}] a CNI runtime added (ipam.attachment_ports)
    failed: dict = field(default_factory=dict)  # key -> {spec_hash, reason}: pods that ended Failed (records.py)

    def health_of(self, key):
        return self.health.get(key, UNCHECKED)


def restart_reason(health):
    """Why a pod's containers are restarted: they exited, or failed their liveness probe."""
    reasons = ['container %s' % ', '.join(c + (' exited (OOMKilled)' if c in health.oom else ' exited')
                                          for c in health.dead)] if health.dead else []
    return ', '.join(reasons + [health.unhealthy[c] for c in sorted(health.unhealthy)])


def stays_failed(current, key, pod):
    """The reason a wanted pod is Failed and is left so: it ended Failed
    with this spec, under restartPolicy Never (Kubernetes never restarts
    such a pod); else None."""
    ended = current.failed.get(key)
    if ended and key not in current.pods and ended['spec_hash'] == spec_hash(pod) and initcontainers.ends_failed(pod):
        return ended['reason']
    return None


def obsolete_failures(current, wanted):
    """[Action] forgetting the Failed pods no longer wanted, or wanted
    otherwise (made again)."""
    return [Action('forget_failed', key, 'not wanted on this node' if key not in wanted else
                   'wanted with another spec or restartPolicy: the pod is made again')
            for key in sorted(current.failed) if key not in wanted or not stays_failed(current, key, wanted[key])]


def with_init(reason, pod):
    """A reason to make a pod's sandbox, and the init containers that then
    run first, by name (what check mode and --diff tell)."""
    first = initcontainers.names(pod)
    return '%s; init containers run first: %s' % (reason, ', '.join(first)) if first else reason


class Planner:
    """mtu, pids_limit: what every pod gets; hierarchies: the cgroup
    hierarchies; store: the RecordStore (where each pod's folder is)."""

    def __init__(self, mtu, pids_limit, hierarchies, store):
        self.mtu, self.pids_limit, self.hierarchies, self.store = mtu, pids_limit, hierarchies, store

    def plan(self, current, wanted):
        """[Action] in the order of runtime.PHASES."""
        records = current.pods
        rolling = {pod.get('owner') for key, pod in wanted.items()
                   if key not in records and not stays_failed(current, key, pod)} - {'', None}
        gone = [k for k in sorted(records) if k not in wanted]
        actions = [Action('delete', k, 'not wanted on this node') for k in gone
                   if records[k].get('owner') not in rolling]
        actions += [Action('forget_record', path, 'unreadable (%s): its pod is made again' % why)
                    for path, why in sorted(current.unreadable.items())]
        actions += [Action('unbridge', port, 'on %s, and no pod\'s veth' % BRIDGE)
                    for port in current.foreign_ports]
        actions += obsolete_failures(current, wanted)
        kept = {}
        for key, pod in sorted(wanted.items()):
            record = records.get(key)
            if record is None and stays_failed(current, key, pod):
                continue
            if record is None:
                actions.append(Action('create', key, with_init('new pod', pod)))
            elif record['spec_hash'] != spec_hash(pod):
                actions.append(Action('recreate', key, with_init('containers changed', pod)))
            elif current.health_of(key).problems:
                actions.append(Action('recreate', key, with_init('; '.join(current.health_of(key).problems), pod)))
            else:
                kept[key] = record
        addresses = [a._replace(reason=with_init(a.reason, wanted[a.target])) if a.verb == 'recreate' else a
                     for a in self._address_actions(kept, current.ipam)]
        recreated = {a.target for a in addresses if a.verb == 'recreate'}
        for key in sorted(set(kept) - recreated):
            actions += self._repairs(key, wanted[key], kept[key], current.health_of(key))
        actions += addresses + self._sweep(current)
        actions += [Action('retire', k, 'replaced by the new pods of %s' % records[k]['owner']) for k in gone
                    if records[k].get('owner') in rolling]
        return actions + self._guard_action(current, kept, actions)

    def plan_absent(self, current):
        """Every pod, sandbox, state folder of pods and the guard, removed."""
        actions = [Action('delete', k, 'state absent') for k in sorted(current.pods)]
        actions += [a for a in self._sweep(current) if a.verb in ('forget_netns', 'forget_cgroup')]
        actions += [Action('remove_folder', folder, 'state absent') for folder in current.stale_ipam]
        if cgroups.kubepods_folders(self.hierarchies) and not current.foreign_cgroups:
            actions.append(Action('remove_cgroups', cgroups.KUBEPODS, 'state absent'))
        return actions + nft.plan_delete(srcguard.TABLE, current.guard)

    def _repairs(self, key, pod, record, health):
        found = []
        # The exit status of a container is its node init's to reap, not
        # ours to see: OnFailure restarts like Always; Never leaves it down.
        # A failed liveness probe is a failure under OnFailure too.
        if (health.dead or health.unhealthy) and pod.get('restart_policy', 'Always') != 'Never':
            found.append(Action('restart', key, restart_reason(health)))
        if health.mtu_now != self.mtu:
            found.append(Action('set_mtu', key, 'MTU %s, want %s' % (health.mtu_now, self.mtu)))
        want = cgroups.pids_text(self.pids_limit)
        if health.pids_max not in (None, want):
            found.append(Action('set_pids', key, 'pids.max %s, want %s' % (health.pids_max, want)))
        if record.get('labels') != pod.get('labels', {}):
            found.append(Action('relabel', key, 'labels changed'))
        return found

    def _address_actions(self, kept, owners):
        """Two kept pods on one address: the one IPAM does not name gets a
        new sandbox. A kept pod whose IPAM file is gone gets it back."""
        found, holder = [], {}
        for key, record in sorted(kept.items(), key=lambda item: owners.get(item[1]['ip']) != item[1]['uid']):
            if record['ip'] in holder:
                found.append(Action('recreate', key, 'address %s is also held by %s' % (
                    record['ip'], holder[record['ip']])))
                continue
            holder[record['ip']] = key
            owner = owners.get(record['ip'])
            if owner != record['uid'] and not record.get('cni'):  # a chain's IPAM plugin holds those
                found.append(Action('reserve', key, 'IPAM lost address %s' % record['ip'] if owner is None
                                    else 'IPAM file of %s: %s' % (record['ip'], owner)))
        return found

    def _sweep(self, current):
        """What no record owns: sandboxes and addresses left by a run cut short."""
        known = {r['netns'] for r in current.pods.values()}
        held = {(r['ip'], r['uid']) for r in current.pods.values()}
        uids = {r['uid'] for r in current.pods.values()}
        owned = {self.store.folder(key) for key in current.pods}
        return ([Action('forget_netns', n, 'no pod owns it') for n in current.sandboxes if n not in known]
                + [Action('forget_folder', f, 'no pod owns it (its containers wrote there)')
                   for f in current.folders if f not in owned]
                + [Action('forget_cgroup', path, 'no pod owns it: what runs there is killed')
                   for uid, path in sorted(current.cgroups.items()) if uid not in uids]
                + [Action('release', address, 'no pod of %s holds it' % owner)
                   for address, owner in sorted(current.ipam.items())
                   if (address, owner) not in held and not is_attachment(owner)]
                + [Action('forget_ipam', folder, 'an earlier pod CIDR') for folder in current.stale_ipam])

    def _guard_action(self, current, kept, actions):
        if any(a.verb in ('create', 'recreate', 'delete', 'retire') for a in actions):
            return [Action('guard', srcguard.TABLE, 'pods changed')]
        if nft.needs_update(current.guard, *srcguard.ruleset(kept.values(), current.sole_bridge,
                                                             current.attachments)):
            return [Action('guard', srcguard.TABLE, 'the source guard differs from the pods')]
        return []
