"""A node's pod records: <state_dir>/pods/<namespace>_<name>.json for each
pod podnet started (its sandbox, address, veth, processes, cgroup and the
hash of its spec), and beside each the pod's own folder, where its
containers' logs and writable folders are. A record holds only what podnet
decided; what the kernel says of the pod now is its Health (health.py).

A pod that ended Failed (restartPolicy Never, an init container that did
not complete) keeps no record, sandbox or address, as the kubelet tears a
terminated pod's sandbox down: <state_dir>/failed-pods/<namespace>_<name>.json
says which spec failed and why, so the next run leaves it Failed, as
Kubernetes does, until its spec changes or it is no longer wanted."""
import hashlib
import json
import os
import uuid

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.statefile import read_checked, remove_any, remove_tree, write_atomic
from ansible.module_utils.podnet.kernel import cgroups
from ansible.module_utils.podnet.node.nodestate import FAILED_DIR, PODS_DIR, read_pod_records
from ansible.module_utils.podnet.core import k8s

KEY = 'key'  # namespace/name, added when a record is read or made, never saved


# Container fields podnet added later: unset, they are hashed as before they
# existed, so that a new podnet remakes no pod that does not use them.
ADDED_LATER = ('stand_in', 'probes')


def _hashed(containers):
    return [{k: v for k, v in c.items() if v or k not in ADDED_LATER} for c in containers]


def spec_hash(pod):
    """What, when changed, needs a new sandbox: init containers and
    containers, and what the pod's resolv.conf and hosts are made from; not
    labels. A pod without init containers hashes as before they existed."""
    made_from = {'containers': _hashed(pod['containers']), 'hostname': hostname(pod),
                 'subdomain': pod.get('subdomain'), 'dns': pod.get('dns')}
    if pod.get('init_containers'):
        made_from['init_containers'] = _hashed(pod['init_containers'])
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]


def veth_name(uid):
    """Host side of a pod's veth: `veth<8 hex>` as CNI plugins name it."""
    return 'veth' + hashlib.sha256(uid.encode()).hexdigest()[:8]


def hostname(pod):
    return pod.get('hostname') or k8s.hostname(pod['name'])


def new_record(key, pod):
    """The record of a pod about to be made: a new uid, and what follows from it."""
    uid = str(uuid.uuid4())
    return {KEY: key, 'namespace': pod['namespace'], 'name': pod['name'], 'uid': uid,
            'netns': 'cni-' + uid, 'cgroup': cgroups.pod_path(pod.get('qos', 'BestEffort'), uid),
            'veth': veth_name(uid), 'mac': names.stable_mac('pod', uid),
            'spec_hash': spec_hash(pod), 'labels': pod.get('labels', {}), 'owner': pod.get('owner', ''),
            'ports': [port for c in pod['containers'] for port in c.get('ports') or []],
            'commands': {c['name']: c['argv'] for c in pod['containers']},
            'containers': {}, 'pause': None, 'ip': None, **_init_fields(pod)}


def _init_fields(pod):
    """An init container's command, and once it completed {exit_code,
    tries} under `init_containers`; none for a pod without them. Only
    completed ones are kept: a pod whose init container fails is removed."""
    if not pod.get('init_containers'):
        return {}
    return {'init_commands': {c['name']: c['argv'] for c in pod['init_containers']}, 'init_containers': {}}


class RecordStore:
    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.pods_dir = os.path.join(state_dir, PODS_DIR)
        self.failed_dir = os.path.join(state_dir, FAILED_DIR)

    def read(self):
        """({key: record}, {path: why}) of the records, and those no run can trust."""
        records, unreadable = read_pod_records(self.state_dir)
        for key, record in records.items():
            record[KEY] = key
        return records, unreadable

    def path(self, key):
        return os.path.join(self.pods_dir, key.replace('/', '_') + '.json')

    def folder(self, key):
        """The pod's own folder: its containers' logs and writable folders."""
        return os.path.join(self.pods_dir, key.replace('/', '_'))

    def scratch(self, key, container):
        """A container's writable folders (/tmp, /var/tmp, /run), in its pod's."""
        return os.path.join(self.folder(key), container)

    def folders(self):
        """Every pod folder there is (a folder no record owns is swept)."""
        try:
            found = os.listdir(self.pods_dir)
        except (FileNotFoundError, NotADirectoryError):
            return []
        paths = (os.path.join(self.pods_dir, n) for n in found)
        return sorted(p for p in paths if os.path.isdir(p) and not os.path.islink(p))

    def make_folder(self, key):
        """The pod's folder, empty and root's alone (0700): its containers'
        writable folders are in it, and a container is root with CHOWN,
        FSETID and MKNOD: a setuid program or a device node it leaves there
        must be out of reach of the node's other users, as a runtime's
        layers are."""
        folder = self.folder(key)
        remove_tree(folder)  # a new pod starts with nothing an earlier one left
        os.makedirs(folder, mode=0o700)

    def save(self, record):
        keep = {k: v for k, v in record.items() if k != KEY}
        write_atomic(self.path(record[KEY]), json.dumps(keep, indent=1, sort_keys=True))

    def forget(self, key):
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass
        remove_tree(self.folder(key))

    # -- pods that ended Failed ---------------------------------------------------
    def failed_path(self, key):
        return os.path.join(self.failed_dir, key.replace('/', '_') + '.json')

    def failed(self):
        """({key: {spec_hash, reason}}, {path: why}) of the pods that ended
        Failed, and the files no run can trust (removed by a run: their pods
        are made again)."""
        found, unreadable = {}, {}
        names = sorted(os.listdir(self.failed_dir)) if os.path.isdir(self.failed_dir) else []
        for path in (os.path.join(self.failed_dir, n) for n in names if n.endswith('.json')):
            ended, problem = read_checked(path, _failed)
            if not problem and ended and self.failed_path(ended['key']) != path:
                problem = 'it names %s, whose file this is not' % ended['key']
            if problem:
                unreadable[path] = problem
            elif ended:
                found[ended.pop('key')] = ended
        return found, unreadable

    def save_failed(self, key, spec, reason):
        write_atomic(self.failed_path(key), json.dumps({'key': key, 'spec_hash': spec, 'reason': reason},
                                                       indent=1, sort_keys=True))

    def forget_failed(self, key):
        remove_any(self.failed_path(key))


def _failed(text):
    ended = json.loads(text)
    if not (isinstance(ended, dict) and all(isinstance(ended.get(k), str) for k in ('key', 'spec_hash', 'reason'))):
        raise ValueError('not {key, spec_hash, reason}')
    return ended
