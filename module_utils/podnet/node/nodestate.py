"""What a node keeps in its state directory, read in one place:
the pod CIDR it was given (`pod-cidr`), one record per pod
(`pods/<namespace>_<name>.json`), the pods that ended Failed
(`failed-pods/`), IPAM (`ipam/`) and the node's lock;
and how a reset removes them.

A lab node's state directory is a bind mount of its private folder on the
controller: a reset empties it and leaves the mount point."""
import ipaddress
import json
import os

from ansible.module_utils.podnet.core.statefile import LOCK_FILE, read_checked, remove_any

POD_CIDR_FILE = 'pod-cidr'
PODS_DIR = 'pods'
IPAM_DIR = 'ipam'
FAILED_DIR = 'failed-pods'
OWN = (POD_CIDR_FILE, PODS_DIR, FAILED_DIR, IPAM_DIR, LOCK_FILE)


def read_pod_cidr(state_dir):
    """The node's recorded pod CIDR, or None (also when the file is not one:
    the network module then writes it again, saying what it held)."""
    return read_pod_cidr_checked(state_dir)[0]


def read_pod_cidr_checked(state_dir):
    """(pod CIDR, problem) as statefile.read_checked gives them."""
    return read_checked(os.path.join(state_dir, POD_CIDR_FILE), _pod_cidr)


def _pod_cidr(text):
    return str(ipaddress.IPv4Network(text.strip()))


# What a pod record must hold, and of which type, for a run to trust it.
RECORD_FIELDS = {'namespace': str, 'name': str, 'uid': str, 'netns': str, 'veth': str, 'mac': str,
                 'ip': str, 'spec_hash': str, 'pause': dict, 'containers': dict}


def read_pod_records(state_dir):
    """({namespace/name: record}, {path: problem}) of the pods recorded on
    the node: the records it can trust, and the files it cannot (what
    _record refuses, or a folder), which a run removes: the pods they
    stood for are then made again, and their sandboxes and addresses, owned
    by no record, are swept."""
    pods_dir = os.path.join(state_dir, PODS_DIR)
    records, unreadable = {}, {}
    for name in sorted(os.listdir(pods_dir)) if os.path.isdir(pods_dir) else []:
        if name.endswith('.json'):
            path = os.path.join(pods_dir, name)
            record, problem = read_checked(path, _record)
            if problem:
                unreadable[path] = problem
            elif record:
                records['%s/%s' % (record['namespace'], record['name'])] = record
    return records, unreadable


def _record(text):
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError('not a JSON object')
    wrong = sorted(k for k, kind in RECORD_FIELDS.items() if not isinstance(record.get(k), kind))
    if wrong:
        raise ValueError('missing or of the wrong type: %s' % ', '.join(wrong))
    ipaddress.IPv4Address(record['ip'])
    for process in [record['pause']] + list(record['containers'].values()):
        if not (isinstance(process, dict) and all(isinstance(process.get(k), int) for k in ('pid', 'start'))):
            raise ValueError('a process is not {pid, start}')
    return record


def own_entries(state_dir):
    """podnet's names in the state directory (a temporary file a killed
    writer left included), or None when there is no such folder. Anything
    else there is not podnet's and stays."""
    try:
        names = os.listdir(state_dir)
    except FileNotFoundError:
        return None
    return sorted(n for n in names if n.lstrip('.').split('.')[0] in OWN)


def clear_state(state_dir, keep_dir):
    """Remove podnet's entries, the lock last (the caller holds it), then the
    folder itself if it is left empty, unless keep_dir (a mount point)."""
    for name in sorted(own_entries(state_dir) or [], key=lambda n: n == LOCK_FILE):
        path = os.path.join(state_dir, name)
        remove_any(path)
    if not keep_dir and os.path.isdir(state_dir) and not os.listdir(state_dir):
        os.rmdir(state_dir)
