"""Sample objects that several unit tests build on: pods and their records as a
node keeps them, a lab spec, and a manifest refusal."""
import copy

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.lab import inventory
from ansible.module_utils.podnet.plan import manifests
from ansible.module_utils.podnet.pods import srcguard
from ansible.module_utils.podnet.pods.health import Health
from ansible.module_utils.podnet.pods.planner import NodeState
from ansible.module_utils.podnet.pods.records import spec_hash, veth_name


# -- pods and their records ---------------------------------------------------
MTU = 1450


def pod(name, labels=None, argv=('/bin/sleep', '3600')):
    return {'namespace': 'default', 'name': name, 'labels': labels or {'app': name},
            'containers': [{'name': 'main', 'argv': list(argv), 'env': {}, 'working_dir': None,
                            'ports': []}]}


# node_state() makes them its Health
HEALTH = ('problems', 'dead', 'oom', 'mtu_now', 'pids_max', 'unready', 'unhealthy')


def state(wanted, uid='11111111-2222', ip='10.42.1.2', **changes):
    """A healthy pod's record, with what the kernel says of it (HEALTH)."""
    found = {'namespace': wanted['namespace'], 'name': wanted['name'], 'uid': uid,
             'netns': 'cni-' + uid, 'veth': veth_name(uid), 'ip': ip, 'mac': '02:00:00:00:00:01',
             'spec_hash': spec_hash(wanted), 'labels': dict(wanted['labels']),
             'containers': {'main': {'pid': 200, 'start': 5000}},
             'pause': {'pid': 100, 'start': 4000}, 'problems': [], 'dead': [], 'mtu_now': MTU}
    found.update(changes)
    return found


def node_state(records=None, sandboxes=None, ipam=None, stale=(), guard=None):
    """A consistent node: every record's sandbox and address in place and
    the guard matching the records, unless given otherwise."""
    records = {key: dict(r) for key, r in (records or {}).items()}
    health = {key: Health(**{f: r.pop(f) for f in HEALTH if f in r}) for key, r in records.items()}
    if sandboxes is None:
        sandboxes = [r['netns'] for r in records.values()]
    if ipam is None:
        ipam = {r['ip']: r['uid'] for r in records.values()}
    if guard is None:
        guard = nft.wanted_table(*srcguard.ruleset(records.values()))
    return NodeState(records, list(sandboxes), dict(ipam), list(stale), guard, health=health)


# -- a lab spec -----------------------------------------------------------------
LAB = {
    'name': 'lab', 'mtu': 1500,
    'mgmt': {'subnet': '172.30.0.0/24', 'host_ip': '172.30.0.1'},
    'racks': {'rack1': {'subnet': '10.11.1.0/24', 'gateway': '10.11.1.1'},
              'rack2': {'subnet': '10.11.2.0/24', 'gateway': '10.11.2.1'}},
    'outside': {'subnet': '203.0.113.0/24', 'gateway': '203.0.113.1', 'host_ip': '203.0.113.10'},
}
NODES = [
    {'name': 'node1', 'mgmt_ip': '172.30.0.11', 'rack': 'rack1', 'underlay_ip': '10.11.1.11'},
    {'name': 'node2', 'mgmt_ip': '172.30.0.12', 'rack': 'rack2', 'underlay_ip': '10.11.2.12'},
]


def parse_with(lab_change=None, node_change=None, reserved=()):
    lab, nodes = copy.deepcopy(LAB), copy.deepcopy(NODES)
    if lab_change:
        lab_change(lab)
    if node_change:
        node_change(nodes)
    return inventory.parse(lab, nodes, reserved)


# -- manifests ------------------------------------------------------------------
def refusal(paths):
    with pytest.raises(SpecError) as info:
        manifests.load(paths)
    return str(info.value)
