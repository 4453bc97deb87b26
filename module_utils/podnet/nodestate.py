"""What a node keeps in its state directory, read in one place:
the pod CIDR it was given (`pod-cidr`), one record per pod
(`pods/<namespace>_<name>.json`), IPAM (`ipam/`) and the node's lock;
and how a reset removes them.

A lab node's state directory is a bind mount of its private folder on the
controller: a reset empties it and leaves the mount point."""
import json
import os
import shutil

from ansible.module_utils.podnet.statefile import LOCK_FILE

POD_CIDR_FILE = 'pod-cidr'
PODS_DIR = 'pods'
IPAM_DIR = 'ipam'
OWN = (POD_CIDR_FILE, PODS_DIR, IPAM_DIR, LOCK_FILE)


def read_pod_cidr(state_dir):
    """The node's recorded pod CIDR, or None."""
    try:
        with open(os.path.join(state_dir, POD_CIDR_FILE)) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def read_pod_records(state_dir):
    """{namespace/name: record} of every pod recorded on the node."""
    pods_dir = os.path.join(state_dir, PODS_DIR)
    records = {}
    for name in sorted(os.listdir(pods_dir)) if os.path.isdir(pods_dir) else []:
        if name.endswith('.json'):
            with open(os.path.join(pods_dir, name)) as f:
                record = json.load(f)
            records['%s/%s' % (record['namespace'], record['name'])] = record
    return records


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
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if not keep_dir and os.path.isdir(state_dir) and not os.listdir(state_dir):
        os.rmdir(state_dir)
