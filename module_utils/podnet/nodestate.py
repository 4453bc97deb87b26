"""What a node keeps in its state directory, read in one place:
the pod CIDR it was given (`pod-cidr`) and one record per pod
(`pods/<namespace>_<name>.json`)."""
import json
import os

POD_CIDR_FILE = 'pod-cidr'
PODS_DIR = 'pods'


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
