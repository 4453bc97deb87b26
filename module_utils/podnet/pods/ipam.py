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

The same files serve podnet-cni (cniplugin/), so the pods podnet runs and
the containers a CNI runtime adds on the node never share an address. Its
owner ids start with ATTACHMENT (`cni/<network>/<container id>/<ifname>`):
the runtime's DEL and GC release them, never the pods module's sweep.
"""
import ipaddress
import itertools
import os

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import PodnetError
from ansible.module_utils.podnet.core.statefile import create_exclusive, read_checked, remove_any, write_atomic
from ansible.module_utils.podnet.node.nodestate import IPAM_DIR
from ansible.module_utils.podnet.pods.records import veth_name

LAST = 'last_reserved_ip'
ATTACHMENT = 'cni/'  # owner ids of podnet-cni's attachments


def is_attachment(owner):
    """Whether an owner id is a CNI runtime's attachment, not a pod's uid."""
    return owner.startswith(ATTACHMENT)


def attachment_veth(owner):
    """The host end of an attachment's veth, named as a pod's (`veth<8 hex>`)."""
    return veth_name(owner)


def attachment_mac(owner):
    """The MAC of an attachment's container end, stable as a pod's eth0's."""
    return names.stable_mac('cni', owner)


def attachment_ports(owners):
    """[{veth, mac, ip}] of the attachments among {address: owner}: what the
    source guard lets send on cni0, beside the pods (srcguard.ruleset)."""
    return [{'veth': attachment_veth(owner), 'mac': attachment_mac(owner), 'ip': address}
            for address, owner in sorted(owners.items()) if is_attachment(owner)]


class IpamError(PodnetError):
    """The pod CIDR cannot give an address."""


class HostLocalIpam:
    def __init__(self, state_dir, pod_cidr):
        self.network = ipaddress.IPv4Network(pod_cidr)
        self.gateway = self.network.network_address + 1
        self.dir = os.path.join(state_dir, IPAM_DIR, str(self.network).replace('/', '_'))
        self._unrecorded = None  # the last address allocate() gave, not yet in LAST

    def owners(self):
        """{address: owner id} of every allocated address."""
        if not os.path.isdir(self.dir):
            return {}
        return self.owners_of(n for n in os.listdir(self.dir) if n != LAST and not n.startswith('.'))

    def _last(self):
        if self._unrecorded is not None:
            return self._unrecorded
        return read_checked(os.path.join(self.dir, LAST), str.strip)[0]

    def _candidates(self):
        """Usable addresses in allocation order: after the last reserved one.
        A generator over integers: a call that takes the first free address
        (podnet-cni's ADD) makes a few strings, not the whole pod CIDR's."""
        first, end = int(self.network.network_address) + 1, int(self.network.broadcast_address)
        gateway = int(self.gateway)
        try:
            last = int(ipaddress.IPv4Address(self._last()))
        except (ipaddress.AddressValueError, TypeError):
            last = None
        start = last + 1 if last is not None and first <= last < end and last != gateway else first
        for number in itertools.chain(range(start, end), range(first, start)):
            if number != gateway:
                yield str(ipaddress.IPv4Address(number))

    def allocate(self, owner, taken=(), record=True, interface='eth0'):
        """Reserve the next free address for owner; return 'a.b.c.d'.
        taken: addresses pods hold whatever the files say. record=False
        leaves last_reserved_ip to record_last(), once for many pods: it only
        steers the round robin, and each write is a file created and renamed."""
        for address in self._candidates():
            if address not in taken and create_exclusive(self._path(address), self._owner_text(owner, interface)):
                self._unrecorded = address
                if record:
                    self.record_last()
                return address
        raise IpamError(str(self.network), 'pod CIDR exhausted: every address is in use')

    def record_last(self):
        """Write last_reserved_ip for the addresses allocated since."""
        if self._unrecorded is not None:
            write_atomic(os.path.join(self.dir, LAST), self._unrecorded)
            self._unrecorded = None

    def reserve(self, address, owner):
        """Record that owner holds address (its file was lost)."""
        write_atomic(self._path(address), self._owner_text(owner))

    def release(self, address, owner=None):
        """Free address; with owner, only if the file still names it."""
        if owner is not None and self.owners_of([address]).get(address) != owner:
            return
        remove_any(self._path(address))

    def owners_of(self, addresses):
        """{address: owner id}; for a file that holds none (garbage, a
        folder), a text naming the file and why, which no pod's id equals:
        the pods planner then releases or reserves it again."""
        found = {}
        for address in addresses:
            path = self._path(address)
            owner, problem = read_checked(path, _owner_id)
            if problem:
                found[address] = 'unreadable %s (%s)' % (path, problem)
            elif owner is not None:
                found[address] = owner
        return found

    def _path(self, address):
        return os.path.join(self.dir, str(address))

    @classmethod
    def every_owner(cls, state_dir):
        """The owner ids in every pod CIDR's folder the node has: whatever
        podnet started is named there before it exists (allocate)."""
        parent = os.path.join(state_dir, IPAM_DIR)
        found = set()
        for folder in sorted(os.listdir(parent)) if os.path.isdir(parent) else ():
            if os.path.isdir(os.path.join(parent, folder)):
                ipam = cls(state_dir, folder.replace('_', '/'))
                found.update(ipam.owners().values())
        return found

    @staticmethod
    def _owner_text(owner, interface='eth0'):
        return '%s\n%s\n' % (owner, interface)

    def stale_folders(self):
        """Folders of earlier pod CIDRs of this node (left by a CIDR change)."""
        parent = os.path.dirname(self.dir)
        if not os.path.isdir(parent):
            return []
        return sorted(os.path.join(parent, d) for d in os.listdir(parent)
                      if os.path.join(parent, d) != self.dir)

    def capacity(self):
        return self.network.num_addresses - 3


def _owner_id(text):
    """The owner id of an address file (`<id>\\n<interface>\\n`, as host-local
    writes it): one word on the first line, else ValueError."""
    owner = text.split('\n')[0]
    if not owner or len(owner.split()) != 1:
        raise ValueError('not an owner id and interface')
    return owner
