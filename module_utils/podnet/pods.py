"""Reconcile the pods of one node: read_current() -> plan() -> apply().

State of each pod lives in <state_dir>/pods/<namespace>_<name>.json (its
sandbox, address, veth, processes and the hash of its spec); the kernel is
checked against it, so a pod whose pause died or whose veth vanished is
recreated, a container that died is restarted, and pods no longer wanted are
removed with everything they had.
"""
import hashlib
import ipaddress
import json
import os
import shutil
import uuid

from ansible.module_utils.podnet import names
from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.ipam import HostLocalIpam
from ansible.module_utils.podnet.network import BRIDGE
from ansible.module_utils.podnet.nodestate import PODS_DIR, read_pod_records
from ansible.module_utils.podnet.netlink import (
    delete_link, link_index, links_by_name, rtnl)
from ansible.module_utils.podnet.sandbox import (
    Process, SandboxError, Spawner, kill_holders, list_netns, netns_path, pod_rtnl, remove_netns)

BATCH = 32  # sandboxes in flight in the spawner's pipe
REPAIRS = ('restart', 'set_mtu', 'relabel', 'forget_netns', 'release', 'forget_ipam')
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def spec_hash(pod):
    """What, when changed, needs a new sandbox: containers, not labels."""
    return hashlib.sha256(json.dumps(pod['containers'], sort_keys=True).encode()).hexdigest()[:16]


def veth_name(uid):
    """Host side of a pod's veth: `veth<8 hex>` as CNI plugins name it."""
    return 'veth' + hashlib.sha256(uid.encode()).hexdigest()[:8]


class NodePods:
    def __init__(self, state_dir, pod_cidr, mtu):
        self.state_dir = state_dir
        self.pods_dir = os.path.join(state_dir, PODS_DIR)
        self.ipam = HostLocalIpam(state_dir, pod_cidr)
        self.prefixlen = ipaddress.IPv4Network(pod_cidr).prefixlen
        self.mtu = mtu

    # -- reading -----------------------------------------------------------
    def _state_path(self, key):
        return os.path.join(self.pods_dir, key.replace('/', '_') + '.json')

    def read_current(self):
        """{key: state dict with 'problems' and 'dead' containers added}."""
        states = read_pod_records(self.state_dir)
        with rtnl() as ipr:
            links = links_by_name(ipr)
        bridge = links[BRIDGE]['index'] if BRIDGE in links else None
        for state in states.values():
            self._check(state, links, bridge)
        return states

    def _check(self, state, links, bridge):
        problems = []
        if not Process.from_dict(state['pause']).alive():
            problems.append('pause process gone')
        if not os.path.exists(netns_path(state['netns'])):
            problems.append('sandbox %s gone' % state['netns'])
        veth = links.get(state['veth'])
        if veth is None or bridge is None or veth.get('IFLA_MASTER') != bridge:
            problems.append('%s not on %s' % (state['veth'], BRIDGE))
        if ipaddress.IPv4Address(state['ip']) not in self.ipam.network:
            problems.append('address %s is outside the pod CIDR %s' % (state['ip'], self.ipam.network))
        state['problems'] = problems
        state['dead'] = sorted(c for c, p in state['containers'].items()
                               if not Process.from_dict(p).alive())
        state['mtu_now'] = veth.get('IFLA_MTU') if veth else None

    # -- planning ----------------------------------------------------------
    def plan(self, current, wanted):
        """[(verb, key, reason)] in the order apply() runs them."""
        actions = [('delete', k, 'not wanted on this node') for k in sorted(current) if k not in wanted]
        for key, pod in sorted(wanted.items()):
            state = current.get(key)
            if state is None:
                actions.append(('create', key, 'new pod'))
            elif state['spec_hash'] != spec_hash(pod):
                actions.append(('recreate', key, 'containers changed'))
            elif state['problems']:
                actions.append(('recreate', key, '; '.join(state['problems'])))
            else:
                actions += self._repairs(key, pod, state)
        known = {s['netns'] for s in current.values()}
        actions += [('forget_netns', n, 'no pod owns it') for n in list_netns() if n not in known]
        owners = {s['uid'] for s in current.values()}
        actions += [('release', address, 'its owner %s is gone' % owner)
                    for address, owner in sorted(self.ipam.owners().items()) if owner not in owners]
        actions += [('forget_ipam', folder, 'an earlier pod CIDR') for folder in self.ipam.stale_folders()]
        return actions

    def _repairs(self, key, pod, state):
        found = []
        # The exit status of a container is its node init's to reap, not
        # ours to see: OnFailure restarts like Always; Never leaves it down.
        if state['dead'] and pod.get('restart_policy', 'Always') != 'Never':
            found.append(('restart', key, 'container %s exited' % ', '.join(state['dead'])))
        if state['mtu_now'] != self.mtu:
            found.append(('set_mtu', key, 'MTU %s, want %s' % (state['mtu_now'], self.mtu)))
        if state.get('labels') != pod.get('labels', {}):
            found.append(('relabel', key, 'labels changed'))
        return found

    # -- applying ----------------------------------------------------------
    def apply(self, actions, current, wanted):
        """Deletes, then creates in pipelined batches, then repairs."""
        spawn = Spawner()
        try:
            self._delete_many([k for v, k, _ in actions if v in ('delete', 'recreate')], current)
            self._create_many([k for v, k, _ in actions if v in ('create', 'recreate')],
                              current, wanted, spawn)
            for verb, key, _ in actions:
                if verb in REPAIRS:
                    getattr(self, '_' + verb)(key, current, wanted, spawn)
        finally:
            spawn.close()

    def _delete_many(self, keys, current):
        """Kill every process first, then remove links, sandboxes, addresses:
        the kernel tears the namespaces down together."""
        states = [current.pop(k) for k in keys]
        for state in states:
            for proc in list(state['containers'].values()) + [state['pause']]:
                if proc:
                    Process.from_dict(proc).kill()
        with rtnl() as ipr:
            links = links_by_name(ipr)
            for state in states:
                if state['veth'] in links:
                    delete_link(ipr, state['veth'])
        for key, state in zip(keys, states):
            remove_netns(state['netns'])
            if state['ip']:
                self.ipam.release(state['ip'])
            self._forget(key)

    def _create_many(self, keys, current, wanted, spawn):
        """Pipelined: the spawner makes the next sandboxes while this process
        records the last ones. A pod that fails is removed; the others stay."""
        failed = []
        with rtnl() as ipr:
            bridge = link_index(ipr, BRIDGE)
        if keys and bridge is None:
            raise PodnetError(BRIDGE, 'no pod bridge on this node: run the network role first')
        for start in range(0, len(keys), BATCH):
            batch = [self._new_state(k, wanted[k]) for k in keys[start:start + BATCH]]
            for state in batch:
                state['ip'] = self.ipam.allocate(state['uid'])
                self._submit_sandbox(spawn, state, bridge)
            for state in batch:
                self._sandbox_ready(spawn, state, wanted[state['key']], failed)
            for state in batch:
                self._containers_ready(spawn, state, wanted[state['key']], failed)
                if state['key'] in dict(failed):
                    self._teardown(state)
                else:
                    self._save(state['key'], state)
                    current[state['key']] = state
        if failed:
            raise SandboxError(', '.join(k for k, _ in failed), '; '.join(e for _, e in failed))

    def _new_state(self, key, pod):
        uid = str(uuid.uuid4())
        return {'key': key, 'namespace': pod['namespace'], 'name': pod['name'], 'uid': uid,
                'netns': 'cni-' + uid, 'veth': veth_name(uid), 'mac': names.stable_mac('pod', uid),
                'spec_hash': spec_hash(pod), 'labels': pod.get('labels', {}),
                'ports': [port for c in pod['containers'] for port in c.get('ports') or []],
                'containers': {}, 'pause': None, 'ip': None}

    def _submit_sandbox(self, spawn, state, bridge):
        """The spawner makes the sandbox and wires it: eth0 with the pod's
        address and default route inside, veth<hex> on cni0 outside."""
        spawn.submit(state['key'], op='sandbox', netns=netns_path(state['netns']),
                     hostname=state['name'], veth=state['veth'], mac=state['mac'],
                     cidr='%s/%d' % (state['ip'], self.prefixlen), mtu=self.mtu,
                     gateway=str(self.ipam.gateway), bridge=bridge,
                     broadcast=str(self.ipam.network.broadcast_address))

    def _sandbox_ready(self, spawn, state, pod, failed):
        try:
            state['pause'] = spawn.collect().as_dict()
            os.makedirs(self._log_dir(state['key']), exist_ok=True)
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
        env = {'PATH': DEFAULT_PATH, 'HOSTNAME': pod['name']}
        env.update(container.get('env') or {})
        spawn.submit('%s container %s' % (state['key'], container['name']), op='container',
                     netns=netns_path(state['netns']), pause=state['pause']['pid'],
                     argv=container['argv'], env=env, cwd=container.get('working_dir') or '/',
                     log=os.path.join(self._log_dir(state['key']), container['name'] + '.log'))

    def _restart(self, key, current, wanted, spawn):
        state = current[key]
        pod = wanted[key]
        for container in pod['containers']:
            if container['name'] in state['dead']:
                self._submit_container(spawn, pod, state, container)
                state['containers'][container['name']] = spawn.collect().as_dict()
        self._save(key, state)

    def _set_mtu(self, key, current, wanted, spawn):
        state = current[key]
        with rtnl() as ipr:
            ipr.link('set', index=link_index(ipr, state['veth']), mtu=self.mtu)
        with pod_rtnl(state['netns']) as ipr:
            ipr.link('set', index=link_index(ipr, 'eth0'), mtu=self.mtu)

    def _relabel(self, key, current, wanted, spawn):
        current[key]['labels'] = wanted[key].get('labels', {})
        self._save(key, current[key])

    def _forget_netns(self, netns, current, wanted, spawn):
        """A sandbox no record owns (a create cut short): stop its processes;
        its veth goes with the namespace, its address with a release."""
        kill_holders(netns)
        remove_netns(netns)

    def _forget_ipam(self, folder, current, wanted, spawn):
        shutil.rmtree(folder, ignore_errors=True)

    def _release(self, address, current, wanted, spawn):
        self.ipam.release(address)

    def _teardown(self, state):
        """Undo a pod that failed half-way; every step tolerates what is gone."""
        for proc in list(state['containers'].values()) + [state['pause']]:
            if proc:
                Process.from_dict(proc).kill()
        with rtnl() as ipr:
            delete_link(ipr, state['veth'])
        remove_netns(state['netns'])
        if state['ip']:
            self.ipam.release(state['ip'])

    def _forget(self, key):
        try:
            os.unlink(self._state_path(key))
        except FileNotFoundError:
            pass
        shutil.rmtree(self._log_dir(key), ignore_errors=True)

    def _log_dir(self, key):
        return os.path.join(self.pods_dir, key.replace('/', '_'))

    def _save(self, key, state):
        os.makedirs(self.pods_dir, exist_ok=True)
        keep = {k: v for k, v in state.items() if k not in ('problems', 'dead', 'mtu_now', 'key')}
        tmp = self._state_path(key) + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(keep, f, indent=1, sort_keys=True)
        os.replace(tmp, self._state_path(key))
