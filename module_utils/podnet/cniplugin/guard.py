"""The node's source guard (pods/srcguard.py) told of a new attachment.

On a node where podnet runs pods, the `bridge podnet-guard` table lets a
port of cni0 send only from its own MAC and address, and drops a port it
has no chain for: a runtime's container would be mute until the pods
module's next run (which puts podnet-cni's attachments in the guard, from
the IPAM files). So after an ADD the guard is rendered again, as the pods
module renders it (every pod's record and every attachment of the node's
IPAM), under the node's lock; a node without the guard (no pods module
there) is left as it is.
Whether the node has the guard is one netlink round trip
(nft.table_exists), not an nft exec: every ADD asks.
"""
import subprocess

from ansible.module_utils.podnet.core.statefile import node_lock
from ansible.module_utils.podnet.kernel import nft, rawnl
from ansible.module_utils.podnet.node.nodestate import read_pod_records
from ansible.module_utils.podnet.pods import srcguard
from ansible.module_utils.podnet.pods.ipam import attachment_ports


def run(argv, data=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def refresh(state_dir, ipam, bridge):
    """Render the guard again if the node has one and it lacks what pods and
    attachments need; True if it did. ipam: the node's HostLocalIpam."""
    if not nft.table_exists(srcguard.FAMILY, srcguard.TABLE):
        return False
    with node_lock(state_dir):
        current = nft.current_table(run, srcguard.FAMILY, srcguard.TABLE)
        if current is None:
            return False
        pods = [{'veth': r['veth'], 'mac': r['mac'], 'ip': r['ip']} for r in read_pod_records(state_dir)[0].values()]
        nl = rawnl.Rtnl()
        try:
            links = nl.links()
        finally:
            nl.close()
        sole = not any(link['kind'] == 'bridge' for name, link in links.items() if name != bridge)
        chains, rules = srcguard.ruleset(pods, sole, attachment_ports(ipam.owners()))
        if not nft.needs_update(current, chains, rules):
            return False
        nft.apply(run, nft.table_commands(srcguard.FAMILY, srcguard.TABLE, chains, rules), srcguard.TABLE)
        return True
