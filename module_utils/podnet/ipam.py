"""host-local style IPAM: one file per address in use, kept on the node.

Like the CNI host-local plugin, each allocated address is a file named after
it, holding the owning sandbox id; `last_reserved_ip` makes allocation
round-robin, so an address freed by a deleted pod is not handed to the very
next pod (stale ARP and conntrack entries point at it for a while). An
address is free only when its file is gone: no reuse while in use; the
pods planner releases files whose owner no longer exists (owners()), so
nothing leaks across crashes.
"""
import ipaddress
import os

from ansible.module_utils.podnet.errors import PodnetError

LAST = 'last_reserved_ip'


class IpamError(PodnetError):
    """The pod CIDR cannot give an address."""


class HostLocalIpam:
    def __init__(self, state_dir, pod_cidr):
        self.network = ipaddress.IPv4Network(pod_cidr)
        self.gateway = self.network.network_address + 1
        self.dir = os.path.join(state_dir, 'ipam', str(self.network).replace('/', '_'))

    def owners(self):
        """{address: owner id} of every allocated address."""
        if not os.path.isdir(self.dir):
            return {}
        found = {}
        for name in os.listdir(self.dir):
            if name != LAST and not name.startswith('.'):
                with open(os.path.join(self.dir, name)) as f:
                    found[name] = f.read().split('\n')[0]
        return found

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

    def allocate(self, owner):
        """Reserve the next free address for owner; return 'a.b.c.d'."""
        os.makedirs(self.dir, mode=0o755, exist_ok=True)
        for address in self._candidates():
            try:
                fd = os.open(os.path.join(self.dir, str(address)),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, 'w') as f:
                f.write('%s\neth0\n' % owner)
            self._write_last(address)
            return str(address)
        raise IpamError(str(self.network), 'pod CIDR exhausted: every address is in use')

    def _write_last(self, address):
        tmp = os.path.join(self.dir, '.' + LAST)
        with open(tmp, 'w') as f:
            f.write(str(address))
        os.replace(tmp, os.path.join(self.dir, LAST))

    def release(self, address):
        try:
            os.unlink(os.path.join(self.dir, address))
        except FileNotFoundError:
            pass

    def stale_folders(self):
        """Folders of earlier pod CIDRs of this node (left by a CIDR change)."""
        parent = os.path.dirname(self.dir)
        if not os.path.isdir(parent):
            return []
        return sorted(os.path.join(parent, d) for d in os.listdir(parent)
                      if os.path.join(parent, d) != self.dir)

    def capacity(self):
        return self.network.num_addresses - 3
