"""A node's pod network: the cni0 bridge holding the gateway of the node's
pod CIDR, and the masquerade table for pod traffic leaving the cluster.

Shape: read_current() -> plan(current) -> apply(actions).
"""
import ipaddress
import os

from ansible.module_utils.podnet import nft
from ansible.module_utils.podnet.nodestate import POD_CIDR_FILE, read_pod_cidr
from ansible.module_utils.podnet.netlink import (
    addresses_by_link, ensure_address, ensure_bridge, links_by_name, rtnl, delete_link)

BRIDGE = 'cni0'
NAT_FAMILY, NAT_TABLE = 'ip', 'podnet-nat'


def nat_ruleset(pod_cidr, cluster_cidr):
    """Masquerade what pods send outside the cluster CIDR, and nothing else:
    pod to pod and node to pod keep their source address."""
    chains = [{'name': 'postrouting', 'type': 'nat', 'hook': 'postrouting',
               'prio': 100, 'policy': 'accept'}]
    rules = [('postrouting', [nft.match('ip', 'saddr', '==', nft.prefix(pod_cidr)),
                              nft.match('ip', 'daddr', '!=', nft.prefix(cluster_cidr)),
                              {'masquerade': None}])]
    return chains, rules


class NodeNetwork:
    def __init__(self, run, state_dir, pod_cidr, cluster_cidr, mtu):
        self.run = run
        self.state_dir = state_dir
        self.pod_cidr = pod_cidr
        self.cluster_cidr = cluster_cidr
        self.mtu = mtu
        net = ipaddress.IPv4Network(pod_cidr)
        self.gateway = '%s/%d' % (net.network_address + 1, net.prefixlen)

    def read_current(self):
        with rtnl() as ipr:
            link = links_by_name(ipr).get(BRIDGE)
            addrs = sorted(addresses_by_link(ipr).get(link['index'], ())) if link else []
        saved = read_pod_cidr(self.state_dir)
        return {'bridge': {'mtu': link.get('IFLA_MTU'), 'addresses': addrs,
                           'up': link['flags'] & 1 == 1} if link else None,
                'nat': nft.current_table(self.run, NAT_FAMILY, NAT_TABLE),
                'pod_cidr': saved}

    def wanted(self):
        return {'bridge': {'mtu': self.mtu, 'addresses': [self.gateway], 'up': True},
                'pod_cidr': self.pod_cidr}

    def plan(self, current, state):
        if state == 'absent':
            return [a for a, present in (('delete_bridge', current['bridge']),
                                         ('delete_nat', current['nat']),
                                         ('forget_pod_cidr', current['pod_cidr'])) if present]
        actions = []
        if current['bridge'] != self.wanted()['bridge']:
            actions.append('bridge')
        if nft.needs_update(current['nat'], *nat_ruleset(self.pod_cidr, self.cluster_cidr)):
            actions.append('nat')
        if current['pod_cidr'] != self.pod_cidr:
            actions.append('save_pod_cidr')
        return actions

    def apply(self, actions):
        for action in actions:
            getattr(self, '_' + action)()

    def _bridge(self):
        with rtnl() as ipr:
            index = ensure_bridge(ipr, BRIDGE, self.mtu)
            for stale in addresses_by_link(ipr).get(index, set()) - {self.gateway}:
                address, length = stale.split('/')
                ipr.addr('del', index=index, address=address, prefixlen=int(length))
            ensure_address(ipr, index, self.gateway)
            ipr.link('set', index=index, mtu=self.mtu, state='up')

    def _nat(self):
        chains, rules = nat_ruleset(self.pod_cidr, self.cluster_cidr)
        nft.apply(self.run, nft.table_commands(NAT_FAMILY, NAT_TABLE, chains, rules), NAT_TABLE)

    def _save_pod_cidr(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, POD_CIDR_FILE), 'w') as f:
            f.write(self.pod_cidr + '\n')

    def _delete_bridge(self):
        with rtnl() as ipr:
            delete_link(ipr, BRIDGE)

    def _delete_nat(self):
        nft.apply(self.run, nft.delete_commands(NAT_FAMILY, NAT_TABLE), NAT_TABLE)

    def _forget_pod_cidr(self):
        os.unlink(os.path.join(self.state_dir, POD_CIDR_FILE))
