"""Services as nftables, on the pattern of kube-proxy's nftables mode.

One table per node, `ip podnet-services`, laid out as KEP-3866's
kube-proxy lays out its own (pkg/proxy/nftables), so what a user learns
here reads the same on a cluster:

- `services` dispatches with one verdict-map lookup, whatever the number
  of Services: `ip daddr . meta l4proto . th dport vmap @service-ips` for
  ClusterIPs (and, as k3s's ServiceLB does, LoadBalancer ports on the
  node's own address), `meta l4proto . th dport vmap @service-nodeports`
  for NodePorts on the node's address. It runs from the nat prerouting
  and output hooks, so pods and the node's own processes meet it alike.
- a chain per Service port (`svc-ns/name/proto/port`) picks an endpoint
  with `numgen random mod N` (after the ClientIP affinity sets, when the
  Service has affinity); a chain per endpoint (`ep-...`) DNATs to it.
- external traffic (NodePort, LoadBalancer) enters through `ext-...`:
  with externalTrafficPolicy Cluster it is marked for masquerade, then
  handled as cluster traffic; with Local it goes only to this node's
  endpoints, keeping the client's address, and is dropped on a node that
  has none.
- masquerade only where kube-proxy masquerades: traffic marked in the
  chains above (external with policy Cluster, off-cluster sources to a
  ClusterIP, and a pod reaching itself through its own Service: hairpin,
  marked as such too, for the policy table: masqueraded, it comes from the
  pod's node, which NetworkPolicy never blocks).
- filter chains reject new connections to a Service that has no
  endpoints (ICMP port unreachable, as kube-proxy) and to a ClusterIP's
  undeclared ports, and drop what goes to an unallocated ClusterIP. They
  judge right after DNAT, in prerouting, where kube-proxy judges in input
  and forward: a pod's packet to such a ClusterIP would otherwise be
  routed back out cni0, and the ICMP redirect the node then sends the pod
  uses up the per-host ICMP budget the reject needs (one bucket for both).

Chain and set names are readable on purpose: `nft list table ip
podnet-services` is what a user reads to see the Service path.
"""
import ipaddress

from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.services import endpoints as endpoints_of
from ansible.module_utils.podnet.services.spec import SERVICE_CIDR

FAMILY, NAME = 'ip', 'podnet-services'
TABLE = '%s %s' % (FAMILY, NAME)
MASQUERADE_MARK, HAIRPIN_MARK = nft.MASQUERADE_MARK, nft.HAIRPIN_MARK
REJECT, DROP = 'goto reject-chain', 'drop'

FIXED = '''\
    chain mark-for-masquerade {
        meta mark set meta mark | %(mark)#x
    }
    chain mark-hairpin {
        meta mark set meta mark | %(hairpin)#x
    }
    chain masquerading {
        meta mark & %(mark)#x == 0 return
        meta mark set meta mark ^ %(mark)#x
        masquerade fully-random
    }
    chain services {
        ip daddr . meta l4proto . th dport vmap @service-ips
        ip daddr %(node_ip)s meta l4proto . th dport vmap @service-nodeports
    }
    chain nat-prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        jump services
    }
    chain nat-output {
        type nat hook output priority -100; policy accept;
        jump services
    }
    chain nat-postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        jump masquerading
    }
    chain reject-chain {
        reject
    }
    chain endpoints-check {
        ip daddr . meta l4proto . th dport vmap @no-endpoint-services
        ip daddr %(node_ip)s meta l4proto . th dport vmap @no-endpoint-nodeports
    }
    chain cluster-ips-check {
        ip daddr @cluster-ips reject
        ip daddr %(service_cidr)s drop
    }
    chain filter-prerouting {
        type filter hook prerouting priority dstnat + 10; policy accept;
        ct state new jump endpoints-check
        ct state new jump cluster-ips-check
    }
    chain filter-output {
        type filter hook output priority -110; policy accept;
        ct state new jump endpoints-check
    }
    chain filter-output-post-dnat {
        type filter hook output priority -90; policy accept;
        ct state new jump cluster-ips-check
    }
'''
MAPS = (('cluster-ips', 'set', 'ipv4_addr'),
        ('service-ips', 'map', 'ipv4_addr . inet_proto . inet_service : verdict'),
        ('service-nodeports', 'map', 'inet_proto . inet_service : verdict'),
        ('no-endpoint-services', 'map', 'ipv4_addr . inet_proto . inet_service : verdict'),
        ('no-endpoint-nodeports', 'map', 'inet_proto . inet_service : verdict'))


class _Table:
    """The table being written: its maps' elements and its per-Service chains."""

    def __init__(self):
        self.elements = {kind[0]: [] for kind in MAPS}
        self.chains, self.sets = [], []

    def chain(self, name, rules):
        self.chains.append('\tchain %s {\n%s\t}\n' % (name, ''.join('\t\t%s\n' % r for r in rules)))

    def text(self, node_ip):
        out = ['table %s {\n' % TABLE]
        for name, kind, of in MAPS:
            elements = sorted(set(self.elements[name]))
            listed = '\t\telements = { %s }\n' % ',\n\t\t\t'.join(elements) if elements else ''
            out.append('\t%s %s {\n\t\ttype %s\n%s\t}\n' % (kind, name, of, listed))
        out += self.sets
        out.append(FIXED % {'mark': MASQUERADE_MARK, 'hairpin': MASQUERADE_MARK | HAIRPIN_MARK,
                            'node_ip': node_ip, 'service_cidr': SERVICE_CIDR})
        out += self.chains
        out.append('}\n')
        return ''.join(out)


def _id(service, port):
    return '%s/%s/%s/%d' % (service['namespace'], service['name'], port['protocol'].lower(), port['port'])


def compile_node(services, endpoints, node, node_ip, cluster_cidr):
    """The table's text for one node. endpoints: {service key: [endpoint]}
    as endpoints.resolve() gives them."""
    table = _Table()
    for service in services:
        if service['cluster_ip'] is None:
            continue  # headless or ExternalName: DNS only
        key = '%(namespace)s/%(name)s' % service
        for port in service['ports']:
            ready = [e for e in endpoints.get(key, ()) if endpoints_of.port_key(port) in e['ports']]
            _service_port(table, service, port, ready, node, node_ip, cluster_cidr)
    return table.text(node_ip)


def _service_port(table, service, port, ready, node, node_ip, cluster_cidr):
    ident, proto = _id(service, port), port['protocol'].lower()
    cluster_ip = service['cluster_ip']
    table.elements['cluster-ips'].append(cluster_ip)
    serving = [e for e in ready if e['node'] == node] if service['internal_local'] else ready
    vip = '%s . %s . %d' % (cluster_ip, proto, port['port'])
    if serving:
        table.elements['service-ips'].append('%s : goto svc-%s' % (vip, ident))
        table.chain('svc-' + ident, ['ip daddr %s ip saddr != %s jump mark-for-masquerade' % (cluster_ip, cluster_cidr)]
                    + _pick(table, service, port, serving, ident))
    else:
        table.elements['no-endpoint-services'].append('%s : %s' % (vip, DROP if ready else REJECT))
    if port['node_port'] is None:
        return
    external = _external(table, service, port, ready, node, ident, bool(serving))
    nodeport = '%s . %d' % (proto, port['node_port'])
    load_balancer = '%s . %s . %d' % (node_ip, proto, port['port'])
    if external:
        table.elements['service-nodeports'].append('%s : %s' % (nodeport, external))
        if service['type'] == 'LoadBalancer':
            table.elements['service-ips'].append('%s : %s' % (load_balancer, external))
    else:
        verdict = DROP if ready else REJECT
        table.elements['no-endpoint-nodeports'].append('%s : %s' % (nodeport, verdict))
        if service['type'] == 'LoadBalancer':
            table.elements['no-endpoint-services'].append('%s : %s' % (load_balancer, verdict))


def _external(table, service, port, ready, node, ident, serving):
    """The verdict for external traffic to this port, None: none goes anywhere."""
    if not service['external_local']:
        if not serving:
            return None
        table.chain('ext-' + ident, ['jump mark-for-masquerade', 'goto svc-' + ident])
        return 'goto ext-' + ident
    local = [e for e in ready if e['node'] == node]
    if not local:
        return None
    # The node's own traffic is not external: it goes cluster-wide, masqueraded.
    rules = (['fib saddr type local jump mark-for-masquerade', 'fib saddr type local goto svc-' + ident]
             if serving else [])
    table.chain('ext-' + ident, rules + ['goto local-' + ident])
    table.chain('local-' + ident, _numgen(local, port, ident))
    return 'goto ext-' + ident


def _pick(table, service, port, serving, ident):
    """Affinity first (a client seen within the timeout goes back to its
    endpoint), then a random endpoint."""
    rules = []
    for endpoint in serving:
        name = _endpoint(endpoint, port, ident)
        dnat = _dnat(endpoint, port, ident)
        if service['affinity_timeout']:
            table.sets.append('\tset aff-%s {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n'
                              '\t\ttimeout %ds\n\t}\n' % (name, service['affinity_timeout']))
            rules.append('ip saddr @aff-%s goto ep-%s' % (name, name))
            dnat.insert(1, 'update @aff-%s { ip saddr }' % name)
        table.chain('ep-' + name, dnat)
    return rules + _numgen(serving, port, ident)


def _numgen(serving, port, ident):
    if len(serving) == 1:
        return ['goto ep-' + _endpoint(serving[0], port, ident)]
    choices = ', '.join('%d : goto ep-%s' % (i, _endpoint(e, port, ident)) for i, e in enumerate(serving))
    return ['numgen random mod %d vmap { %s }' % (len(serving), choices)]


def _endpoint(endpoint, port, ident):
    return '%s__%s/%d' % (ident, endpoint['ip'], endpoint['ports'][endpoints_of.port_key(port)])


def _dnat(endpoint, port, ident):
    target = '%s:%d' % (endpoint['ip'], endpoint['ports'][endpoints_of.port_key(port)])
    return ['ip saddr %s jump mark-hairpin' % endpoint['ip'],
            'meta l4proto %s dnat to %s' % (port['protocol'].lower(), target)]


def service_cidr_route(pod_cidr):
    """(destination, source) of the route that lets the node's own
    processes reach ClusterIPs: through cni0, from the pods' gateway (an
    address of the cluster CIDR, so no masquerade is needed)."""
    return SERVICE_CIDR, str(ipaddress.IPv4Network(pod_cidr).network_address + 1)
