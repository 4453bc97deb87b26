"""A node's pod network: the cni0 bridge holding the gateway of the node's
pod CIDR, the masquerade table for pod traffic leaving the cluster, and the
isolation table that keeps pods off the management network (and routed
pods to their own source address).

Shape: the Reconciler of core/reconcile.py: read() -> plan(current) -> do_<verb>(action, current).
"""
import collections
import ipaddress
import os

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.reconcile import Action, Reconciler
from ansible.module_utils.podnet.core.statefile import read_text, remove_any, unreadable, write_atomic
from ansible.module_utils.podnet.kernel import nfteval
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.kernel.netlink import (
    addresses_by_link,
    delete_link,
    ensure_address,
    ensure_bridge,
    links_by_name,
    rtnl,
)
from ansible.module_utils.podnet.node.nodestate import POD_CIDR_FILE, read_pod_cidr_checked

BRIDGE = 'cni0'
ROUTED_POD_PORTS = nfteval.POD_PORT  # veth*: a pod's veth when no bridge holds it
VTEP = 'flannel.1'  # the vxlan backend's device (backend.py)
NAT = ('ip', 'podnet-nat')
ISOLATION = ('inet', 'podnet-isolation')

# What the node's own network looks like from the module: the management
# interface (None when it is the underlay too, or not found) and its
# addresses as CIDRs.
Mgmt = collections.namedtuple('Mgmt', 'ifname addresses')
NetworkSpec = collections.namedtuple(
    'NetworkSpec', 'state_dir pod_cidr cluster_cidr mtu mgmt_address underlay_ip controllers subnet_env',
    defaults=(None,))


def table_name(table):
    return '%s %s' % table


TABLES = {table_name(t): t for t in (NAT, ISOLATION)}  # by the name actions target


def nat_ruleset(pod_cidr, cluster_cidr):
    """Masquerade what pods send outside the cluster CIDR, and nothing else:
    pod to pod and node to pod keep their source address."""
    chains = [{'name': 'postrouting', 'type': 'nat', 'hook': 'postrouting',
               'prio': 100, 'policy': 'accept'}]
    rules = [('postrouting', [nft.match('ip', 'saddr', '==', nft.prefix(pod_cidr)),
                              nft.match('ip', 'daddr', '!=', nft.prefix(cluster_cidr)),
                              {'masquerade': None}])]
    return chains, rules


def _to(networks):
    """Match on destination: networks given as IPv4 addresses or CIDRs,
    written as `nft -j list` prints them back."""
    nets = [ipaddress.IPv4Network(n, strict=False) for n in networks]
    intervals = [(int(n.network_address), int(n.broadcast_address)) for n in nets]
    return nft.match('ip', 'daddr', '==', nft.canonical(intervals, True))


def from_pod_ports():
    """Matches, one per rule, on what a node's pods send from: their ports
    on cni0 (podnet's wiring, the bridge chain), or each a routed veth of
    its own (the ptp chain), which the node sees as veth*."""
    return [nft.meta_match('iifname', '==', name) for name in (BRIDGE, ROUTED_POD_PORTS)]


def isolation_ruleset(cluster_cidr, mgmt, controllers):
    """Pods never reach the management network or the controller, and a pod
    on a routed veth never sends from an address that is not its own.

    mgmt: the node's separate management interface (Mgmt) or None, when the
    management address is also the underlay (a VM with one NIC): then its
    subnet holds the other nodes and stays open, only the controller is cut.
    Pods still reach their node on cni0 and the underlay (G4).

    The source of a pod on cni0 is checked at its port, by the pods' source
    guard (pods/srcguard.py, a bridge-family table). A routed veth is no
    bridge port, so that table never sees it: here its packets must come
    from an address the node routes back through that veth (the pod's own
    /32, which the chain's ADD routed there), as rp_filter=1 would check
    on those veths alone (the node keeps rp_filter 0, roles/node)."""
    from_pods = nft.match('ip', 'saddr', '==', nft.prefix(cluster_cidr))
    prerouting = [[nft.meta_match('iifname', '==', ROUTED_POD_PORTS), nft.no_reverse_path(), nft.DROP]]
    forward, local = [], []
    if mgmt:
        to_mgmt = nft.meta_match('oifname', '==', mgmt.ifname)
        forward += [[port, to_mgmt, nft.DROP] for port in from_pod_ports()]
        forward += [[from_pods, to_mgmt, nft.DROP],
                    [from_pods, _to(mgmt.addresses), nft.DROP]]
        local.append([from_pods, _to(a.split('/')[0] for a in mgmt.addresses), nft.DROP])
    # Pods have no IPv6 route off their node, so an IPv6 controller needs no rule.
    controllers = [c for c in controllers if ipaddress.ip_address(c).version == 4]
    if controllers:
        forward.append([from_pods, _to(controllers), nft.DROP])
    # nft lists rules chain by chain: written the same way, they read back
    # equal. prerouting before conntrack: a spoofed packet leaves no entry.
    chains = [{'name': 'prerouting', 'type': 'filter', 'hook': 'prerouting', 'prio': -300,
               'policy': 'accept'}]
    chains += [{'name': hook, 'type': 'filter', 'hook': hook, 'prio': -10, 'policy': 'accept'}
               for hook in ('forward', 'input')]
    rules = ([('prerouting', expr) for expr in prerouting] + [('forward', expr) for expr in forward] +
             [('input', expr) for expr in local])
    return chains, rules


def subnet_env_vars(cluster_cidr, gateway, mtu):
    """What flanneld writes to subnet.env, which flannel's CNI plugin (and
    the pods role, rendering a chain's list) reads: the node's subnet as
    its gateway with the prefix length."""
    return {'FLANNEL_NETWORK': cluster_cidr, 'FLANNEL_SUBNET': gateway, 'FLANNEL_MTU': str(mtu),
            'FLANNEL_IPMASQ': 'true'}


def subnet_env_text(variables):
    return ''.join('%s=%s\n' % item for item in variables.items())


def _folder_left(path):
    """True when subnet.env's folder (flanneld's /run/flannel, which podnet
    plays) is there and holds nothing but subnet.env: a reset removes it."""
    folder = os.path.dirname(path)
    try:
        return set(os.listdir(folder)) <= {os.path.basename(path)}
    except (FileNotFoundError, NotADirectoryError):
        return False


def pod_flows(pod_cidr, cluster_cidr):
    """[(description, packet)] of the flows every node's pods make: between
    two of its pods, in from and out to a pod of another node (TCP 80, as
    the path explainer judges a packet), with the hooks each meets."""
    own = ipaddress.IPv4Network(pod_cidr)
    other = next(n for n in ipaddress.IPv4Network(cluster_cidr).subnets(new_prefix=own.prefixlen) if n != own)
    pod, neighbour, remote = (str(own.network_address + 2), str(own.network_address + 3),
                              str(other.network_address + 2))
    tcp = dict(protocol='tcp', dport=80)
    port = nfteval.POD_PORT
    return [('pod %s to pod %s' % (pod, neighbour),
             dict(tcp, src=pod, dst=neighbour, stages=nfteval.bridged(port, port, BRIDGE))),
            ('pod %s to pod %s' % (pod, remote),
             dict(tcp, src=pod, dst=remote,
                  stages=nfteval.into_bridge(port, BRIDGE) + nfteval.routed(BRIDGE, VTEP))),
            ('pod %s to pod %s' % (remote, pod),
             dict(tcp, src=remote, dst=pod,
                  stages=nfteval.routed(VTEP, BRIDGE) + nfteval.out_of_bridge(BRIDGE, port)))]


def ssh_client_address(environ):
    """The controller's address as the node sees it: the client of the SSH
    session the module runs in (SSH_CONNECTION, else SSH_CLIENT); None when
    the module does not run over SSH (connection local)."""
    for key in ('SSH_CONNECTION', 'SSH_CLIENT'):
        words = (environ.get(key) or '').split()
        if words:
            return words[0]
    return None


def find_mgmt(addresses, mgmt_address, underlay_ip):
    """The management interface among {ifname: [cidr]}: the one holding
    mgmt_address, unless it also holds the underlay address."""
    for ifname, cidrs in sorted(addresses.items()):
        held = [c.split('/')[0] for c in cidrs]
        if mgmt_address in held:
            if underlay_ip in held or ifname == BRIDGE:
                return None
            return Mgmt(ifname, sorted(c for c in cidrs if ':' not in c))
    return None


def _recorded_pod_cidr(state_dir):
    """The pod CIDR file's CIDR, None, or what is wrong with it (which
    differs from any CIDR, so a run writes it again and a reset removes it)."""
    cidr, problem = read_pod_cidr_checked(state_dir)
    return unreadable(problem) if problem else cidr


def _reason(have, want):
    if have is None:
        return 'missing'
    return ', '.join('%s %s, want %s' % (k, have.get(k), want[k])
                     for k in sorted(want) if have.get(k) != want[k])


class NodeNetwork(Reconciler):
    """cni0 with the pods' gateway, the nat and isolation tables, and the
    recorded pod CIDR of one node."""
    subject = 'podnet_network'

    def __init__(self, run, spec, state='present'):
        self.run = run
        self.spec = spec
        self.absent = state == 'absent'
        self.lock_dir = spec.state_dir
        self.gateway = None  # state absent needs no pod CIDR
        if spec.pod_cidr:
            net = ipaddress.IPv4Network(spec.pod_cidr)
            self.gateway = '%s/%d' % (net.network_address + 1, net.prefixlen)

    def read(self):
        with rtnl() as ipr:
            links = links_by_name(ipr)
            by_index = addresses_by_link(ipr)
        addresses = {name: sorted(by_index.get(link['index'], ())) for name, link in links.items()}
        link = links.get(BRIDGE)
        return {'bridge': {'mtu': link.get('IFLA_MTU'), 'addresses': addresses[BRIDGE],
                           'up': link['flags'] & 1 == 1, 'mac': link.get('IFLA_ADDRESS')} if link else None,
                'tables': {table_name(t): nft.read_table(self.run, *t) for t in (NAT, ISOLATION)},
                'pod_cidr': _recorded_pod_cidr(self.spec.state_dir),
                'subnet_env': read_text(self.spec.subnet_env),
                'mgmt': find_mgmt(addresses, self.spec.mgmt_address, self.spec.underlay_ip),
                'own': sorted(a.split('/')[0] for cidrs in addresses.values() for a in cidrs),
                'ruleset': nft.foreign_ruleset(self.run) if self.spec.pod_cidr else None}

    def foreign_drops(self, current):
        """['<flow>: dropped by <family table chain rule N>: <rule>'] for the
        pod flows of this node that a table podnet does not own would drop,
        as the path explainer names them: podnet never changes such a table,
        it says so (issue 21: a foreign `inet evil` table dropping the pod
        CIDR went unseen by --check and site.yml)."""
        if not current.get('ruleset'):
            return []
        theirs = {'nftables': [i for i in current['ruleset'].get('nftables', []) if not nft.podnets(i)]}
        return nfteval.drops(theirs, pod_flows(self.spec.pod_cidr, self.spec.cluster_cidr))

    def bridge_mac(self):
        """cni0's own MAC, from the pod CIDR, set once: a bridge left to
        itself takes its lowest port's, and changes as pods come and go,
        which fails the CHECK of a bridge plugin's earlier results."""
        return names.stable_mac('cni0', self.spec.pod_cidr)

    def subnet_env_vars(self):
        return subnet_env_vars(self.spec.cluster_cidr, self.gateway, self.spec.mtu) if self.gateway else None

    def controllers(self, current):
        """The controller addresses to cut off; never one of the node's own
        (a controller on the node itself has no address apart from it)."""
        return sorted(set(self.spec.controllers) - set(current['own']))

    def wanted(self, current):
        if self.absent:
            return {}
        spec = self.spec
        return {'bridge': {'mtu': spec.mtu, 'addresses': [self.gateway], 'up': True, 'mac': self.bridge_mac()},
                'tables': {table_name(NAT): nat_ruleset(spec.pod_cidr, spec.cluster_cidr),
                           table_name(ISOLATION): isolation_ruleset(
                               spec.cluster_cidr, current['mgmt'], self.controllers(current))},
                'pod_cidr': spec.pod_cidr,
                'subnet_env': spec.subnet_env and subnet_env_text(self.subnet_env_vars())}

    def show(self, state):
        """A state as the diff shows it: tables in nft's own syntax."""
        if not state:
            return {}
        return {'bridge': state['bridge'], 'pod_cidr': state['pod_cidr'], 'subnet_env': state['subnet_env'],
                'nftables': {name: nft.describe(*table) if table else None
                             for name, table in sorted(state['tables'].items())}}

    def plan(self, current):
        if self.absent:
            return self._plan_absent(current)
        wanted, actions = self.wanted(current), []
        if current['bridge'] != wanted['bridge']:
            actions.append(Action('set_bridge', BRIDGE, _reason(current['bridge'],
                                                                wanted['bridge'])))
        for name, table in sorted(wanted['tables'].items()):
            actions += nft.plan_table(name, current['tables'][name], *table)
        if current['pod_cidr'] != self.spec.pod_cidr:
            actions.append(Action('save_pod_cidr', self._cidr_file(), 'recorded %s, want %s' % (
                current['pod_cidr'], self.spec.pod_cidr)))
        if current['subnet_env'] != wanted['subnet_env']:
            actions.append(Action('write_subnet_env', self.spec.subnet_env,
                                  'missing' if current['subnet_env'] is None else 'content differs'))
        return actions

    def _plan_absent(self, current):
        actions = [Action('delete_bridge', BRIDGE, 'state absent')] if current['bridge'] else []
        for name, table in sorted(current['tables'].items()):
            actions += nft.plan_delete(name, table)
        if current['pod_cidr']:
            actions.append(Action('forget_pod_cidr', self._cidr_file(), 'state absent'))
        path = self.spec.subnet_env
        if path and (current['subnet_env'] is not None or _folder_left(path)):
            actions.append(Action('remove_subnet_env', path, 'state absent'))
        return actions

    def result(self, current, actions):
        return dict(gateway=self.gateway, mgmt_interface=current['mgmt'] and current['mgmt'].ifname,
                    controller_addresses=self.controllers(current), foreign_drops=self.foreign_drops(current),
                    subnet_env=self.subnet_env_vars())

    def warnings(self, current, result):
        return ['a table podnet does not own would drop pod traffic: %s' % w for w in result['foreign_drops']]

    def _cidr_file(self):
        return os.path.join(self.spec.state_dir, POD_CIDR_FILE)

    def do_set_bridge(self, _action, _current):
        with rtnl() as ipr:
            index = ensure_bridge(ipr, BRIDGE, self.spec.mtu)
            for stale in addresses_by_link(ipr).get(index, set()) - {self.gateway}:
                address, length = stale.split('/')
                ipr.addr('del', index=index, address=address, prefixlen=int(length))
            ensure_address(ipr, index, self.gateway)
            ipr.link('set', index=index, mtu=self.spec.mtu, address=self.bridge_mac(), state='up')

    def do_set_table(self, action, current):
        chains, rules = self.wanted(current)['tables'][action.target]
        nft.apply(self.run, nft.table_commands(*TABLES[action.target], chains, rules), action.target)

    def do_save_pod_cidr(self, action, _current):
        write_atomic(action.target, self.spec.pod_cidr + '\n')

    def do_write_subnet_env(self, action, current):
        write_atomic(action.target, self.wanted(current)['subnet_env'])

    def do_delete_bridge(self, _action, _current):
        with rtnl() as ipr:
            delete_link(ipr, BRIDGE)

    def do_delete_table(self, action, _current):
        nft.apply(self.run, nft.delete_commands(*TABLES[action.target]), action.target)

    def do_forget_pod_cidr(self, action, _current):
        remove_any(action.target)

    def do_remove_subnet_env(self, action, _current):
        remove_any(action.target)
        if _folder_left(action.target):
            os.rmdir(os.path.dirname(action.target))
