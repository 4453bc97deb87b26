"""What podnet_services keeps next to the node's Services table
(`services.json` in the state directory): the text it loaded, the digests
that tell whether the kernel still holds it, and `services`, each Service as
this node serves it with each port's endpoints. podnet_facts returns
`services`, so the path explainer and the prober know the ClusterIPs, the
ports and the endpoints the node's table was loaded with."""
import json
import os

from ansible.module_utils.podnet.core import statefile

FILE = 'services.json'


def path(state_dir):
    return os.path.join(state_dir, FILE)


def served(state_dir):
    """{ns/name: {type, cluster_ip, affinity_timeout, external_local,
    internal_local, ports: [{name, protocol, port, node_port, endpoints:
    [{pod, node, ip, port}]}]}} of the record, or None when the node serves
    no Services table or its record cannot be read (podnet_services then
    loads the table again)."""
    record = statefile.read_checked(path(state_dir), json.loads)[0]
    found = record.get('services') if isinstance(record, dict) else None
    return found if isinstance(found, dict) else None
