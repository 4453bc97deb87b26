"""What a node's policy table was compiled from, kept next to it: the
NetworkPolicy objects, every running pod (namespace, name, node, labels, IP,
ports) and the namespaces' labels. podnet_policy writes it with the table
and removes it with the table; podnet_facts returns it, so the probe and
the path explainer judge traffic by the policies the node enforces (not by
manifests edited since) and say which policy and rule decide."""
import json
import os

from ansible.module_utils.podnet.core import statefile

FILE = 'policy-source.json'


def path(state_dir):
    return os.path.join(state_dir, FILE)


def dumps(policies, pods, namespaces):
    """The record as written: sorted keys, so equal inputs give equal text."""
    return json.dumps({'policies': policies, 'pods': pods, 'namespaces': namespaces},
                      sort_keys=True, separators=(',', ':')) + '\n'


def load(state_dir):
    """The record as a dict, or None when the node enforces no policy table
    or its record cannot be read (podnet_policy then writes it again)."""
    return statefile.read_checked(path(state_dir), _record)[0]


def _record(text):
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError('not a JSON object')
    return record
