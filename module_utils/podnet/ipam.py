"""host-local style IPAM: one file per address in use, kept on the node.

Like the CNI host-local plugin, each allocated address is a file named after
it, holding the owning sandbox id; `last_reserved_ip` makes allocation
round-robin, so an address freed by a deleted pod is not handed to the very
next pod (stale ARP and conntrack entries point at it for a while). An
address is free only when its file is gone and no pod record holds it
(`taken`): no reuse while in use. The pods planner reserves again what a
running pod holds and releases files whose owner no longer exists (owners()),
so nothing leaks or doubles across crashes. Files are written whole
(statefile), so a concurrent or killed writer never leaves half of one.
"""
import ipaddress
import os

from ansible.module_utils.podnet.errors import PodnetError
from ansible.module_utils.podnet.nodestate import IPAM_DIR
from ansible.module_utils.podnet.statefile import create_exclusive, write_atomic

LAST = 'last_reserved_ip'


class IpamError(PodnetError):
    """The pod CIDR cannot give an address."""


class HostLocalIpam:
    def __init__(self, state_dir, pod_cidr):
        self.network = ipaddress.IPv4Network(pod_cidr)
        self.gateway = self.network.network_address + 1
        self.dir = os.path.join(state_dir, IPAM_DIR, str(self.network).replace('/', '_'))

    def owners(self):
        """{address: owner id} of every allocated address."""
        if not os.path.isdir(self.dir):
            return {}
        return self.owners_of(n for n in os.listdir(self.dir) if n != LAST and not n.startswith('.'))

    def _candidates(self):
        """Usable addresses in allocation order: after the last reserved one."""
        hosts = [a for a in self.network.hosts() if a != self.gateway]
        try:
            with open(os.path.join(self.dir, LAST)) as f:
                last = ipaddress.IPv4Address(f.read().strip())
            start = hosts.index(last) + 1
        except (FileNotFoundError, ValueError):
            start = 0
        return hosts[start:] + hosts[:start]

    def allocate(self, owner, taken=()):
        """Reserve the next free address for owner; return 'a.b.c.d'.
        taken: addresses pods hold whatever the files say."""
        for address in self._candidates():
            if str(address) not in taken and create_exclusive(self._path(address), self._owner_text(owner)):
                write_atomic(os.path.join(self.dir, LAST), str(address))
                return str(address)
        raise IpamError(str(self.network), 'pod CIDR exhausted: every address is in use')

    def reserve(self, address, owner):
        """Record that owner holds address (its file was lost)."""
        write_atomic(self._path(address), self._owner_text(owner))

    def release(self, address, owner=None):
        """Free address; with owner, only if the file still names it."""
        if owner is not None and self.owners_of([address]).get(address) != owner:
            return
        try:
            os.unlink(self._path(address))
        except FileNotFoundError:
            pass

    def owners_of(self, addresses):
        found = {}
        for address in addresses:
            try:
                with open(self._path(address)) as f:
                    found[address] = f.read().split('\n')[0]
            except FileNotFoundError:
                pass
        return found

    def _path(self, address):
        return os.path.join(self.dir, str(address))

    @staticmethod
    def _owner_text(owner):
        return '%s\neth0\n' % owner

    def stale_folders(self):
        """Folders of earlier pod CIDRs of this node (left by a CIDR change)."""
        parent = os.path.dirname(self.dir)
        if not os.path.isdir(parent):
            return []
        return sorted(os.path.join(parent, d) for d in os.listdir(parent)
                      if os.path.join(parent, d) != self.dir)

    def capacity(self):
        return self.network.num_addresses - 3
