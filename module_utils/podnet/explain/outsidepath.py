"""A path from the lab's outside host to a NodePort or LoadBalancer port
(`explain.yml -e from=outside -e to=<node>:<port>`, or `-e
to=svc/<ns>/<name> -e via=<node>`): the node that takes the connection on
its underlay address DNATs it, and its table (services/ruleset.py) says how.

The node's nat prerouting dispatches `service-nodeports` (protocol . node
port) or, for a LoadBalancer's own port on the node's address,
`service-ips`, to an `ext-...` chain. With externalTrafficPolicy Cluster it
marks the packet for masquerade and goes on to the `svc-...` chain, whose
numgen picks among all endpoints (perhaps on another node); postrouting
masquerades it, so the endpoint sees the node's address. With Local it goes
to `local-...`, only this node's endpoints, unmarked: the endpoint sees the
client's own address; a node with none drops it. The reply is un-NATed by
the node's conntrack.

Masquerade takes the address of the interface the packet leaves by (the
kernel's inet_select_addr): cni0's, the pods' gateway, to an endpoint of
the entry node; flannel.1's under vxlan, the underlay address under host-gw,
to another node's. So the endpoint's node sees that address, not the outside
host's, and its half of the path is read with it (masquerade_source).
"""
import ipaddress

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import servicepath
from ansible.module_utils.podnet.kernel import nfteval
from ansible.module_utils.podnet.services import ruleset as services_table

OUTSIDE = 'outside'  # -e from=: the lab host lab/fabric.py names so (explain does not import lab)
EXTERNAL_TYPES = ('NodePort', 'LoadBalancer')
NODE_PORT, LOAD_BALANCER = 'nodeport', 'loadbalancer'


hop = servicepath.hop


# -- on the controller: which node, which port, which endpoint ---------------------------

def target(services_by_node, underlay, to, via, port, protocol):
    """The external port `to` names, as the node it enters by serves it:
    {key, kind, node, ip (the node's address), port (the port dialled),
    service_port, external_local, endpoints (those this node picks among)}.
    underlay: {node: underlay address}; raises SpecError naming the
    argument."""
    if isinstance(to, str) and to.startswith(servicepath.PREFIX):
        node = _node(underlay, 'via', via)
        key, service = _service(services_by_node.get(node), to[len(servicepath.PREFIX):])
        chosen = servicepath.find_port(key, service, port, protocol)
        return _external(key, service, chosen, NODE_PORT, node, underlay[node])
    if via:
        raise SpecError('via', 'only with to=svc/<namespace>/<name>; to=<node>:<port> names the node already')
    if port not in (None, ''):
        raise SpecError('port', 'to=<node>:<port> names the port already; dport is for to=svc/<namespace>/<name>')
    node, number = _node_port(underlay, to)
    services = services_by_node.get(node) or {}
    found = _dialled_port(services, number, protocol)
    if found is None:
        raise SpecError('to', 'no NodePort or LoadBalancer %s port %d on %s (external ports: %s)' % (
            protocol, number, node, listed(services) or 'none'))
    return _external(*found, node, underlay[node])


def _dialled_port(services, number, protocol):
    """(key, Service, port, kind) a connection to the node's address on
    port number meets: a nodePort first, else a LoadBalancer's own port;
    None."""
    for kind, field, types in ((NODE_PORT, 'node_port', EXTERNAL_TYPES), (LOAD_BALANCER, 'port', ('LoadBalancer',))):
        for key, service in sorted(services.items()):
            chosen = next((p for p in service['ports'] if p[field] == number and p['protocol'] == protocol), None)
            if chosen and service['type'] in types:
                return key, service, chosen, kind
    return None


def listed(services):
    """The external ports a node serves, `30080/TCP (ns/name)`."""
    found = []
    for key, service in sorted((services or {}).items()):
        for port in service['ports']:
            if port.get('node_port'):
                found.append('%d/%s (%s)' % (port['node_port'], port['protocol'], key))
            if service['type'] == 'LoadBalancer':
                found.append('%d/%s (%s, LoadBalancer)' % (port['port'], port['protocol'], key))
    return ', '.join(found)


def _node(underlay, argument, node):
    if not node:
        raise SpecError(argument, 'missing: give -e %s=<node> (nodes: %s)' % (argument, ', '.join(sorted(underlay))))
    if node not in underlay:
        raise SpecError(argument, 'node %s is not in the inventory (nodes: %s)' % (node, ', '.join(sorted(underlay))))
    if not underlay[node]:
        raise SpecError(argument, 'node %s has no underlay address in the inventory (podnet_underlay_ip)' % node)
    return node


def _node_port(underlay, to):
    node, _sep, number = str(to or '').rpartition(':')
    if not node or not number.isdigit():
        raise SpecError('to', '%r is neither <node>:<port> nor svc/<namespace>/<name> (with -e via=<node>)' % (to,))
    return _node(underlay, 'to', node), int(number)


def _service(services, key):
    if not servicepath.KEY.match(key):
        raise SpecError('to', '%r is not a Service as svc/<namespace>/<name>' % key)
    if key not in (services or {}):
        known = ', '.join(sorted(services or {})) or 'none'
        raise SpecError('to', 'no Service %s on the node (Services: %s)' % (key, known))
    service = services[key]
    if service['type'] not in EXTERNAL_TYPES:
        raise SpecError('to', 'Service %s is %s: only a NodePort or LoadBalancer Service is reachable from the '
                        'outside host' % (key, service['type']))
    return key, service


def _external(key, service, port, kind, node, node_ip):
    """The external port as the node's ext chain serves it: with
    externalTrafficPolicy Local only this node's endpoints; with Cluster
    all (only this node's when internalTrafficPolicy is Local too, as the
    svc chain it goes to serves)."""
    local = service.get('external_local') or service.get('internal_local')
    endpoints = [e for e in port['endpoints'] if not local or e['node'] == node]
    return {'key': key, 'kind': kind, 'node': node, 'ip': node_ip,
            'port': port['node_port'] if kind == NODE_PORT else port['port'], 'service_port': port['port'],
            'protocol': port['protocol'], 'external_local': bool(service.get('external_local')),
            'endpoints': endpoints}


def locate(pods, service, outside_ip, wanted=None, networks=None):
    """{source, destination, port, protocol, legs, service, outside} of a
    connection from the outside host: the entry node's leg arrives on its
    underlay NIC and DNATs (its `external`); the endpoint's node, when
    another, has a leg of its own, read with the source the packet has
    there (the entry node's address when masqueraded). pods: {key: pod with
    node}; networks: {node: {backend, pod_cidr, vtep, underlay}}, see
    masquerade_source."""
    endpoint, why = servicepath.follow(service, wanted)
    sources = {'%(ip)s:%(port)d' % e: _seen_source(service, outside_ip, networks, e) for e in service['endpoints']}
    service = dict(service, endpoint=endpoint, why=why, sources=sources)
    source = {'key': OUTSIDE, 'ip': outside_ip, 'node': None}
    if endpoint is None:  # dropped or rejected at the entry node's DNAT hop
        dst = {'key': servicepath.label(service), 'ip': service['ip'], 'node': None}
        flow = {'src': outside_ip, 'dst': service['ip'], 'port': service['port'], 'protocol': service['protocol']}
    else:
        if endpoint['pod'] not in pods:
            raise SpecError('to', 'endpoint %s of Service %s runs on no node: the Services table is older '
                            'than the pods; converge (site.yml)' % (endpoint['pod'], service['key']))
        dst = pods[endpoint['pod']]
        flow = {'src': outside_ip, 'dst': endpoint['ip'], 'port': endpoint['port'], 'protocol': service['protocol']}
    entry = service['node']
    legs = {entry: dict(flow, iif='underlay', external=trace_option(service))}
    if dst.get('node') == entry:
        legs[entry]['destination_pod'] = _trace_dest(dst)
    elif dst.get('node'):
        arrives = sources['%(ip)s:%(port)d' % endpoint] or outside_ip
        legs[dst['node']] = dict(flow, src=arrives, destination_pod=_trace_dest(dst))
    return {'source': source, 'destination': dst, 'port': flow['port'], 'protocol': flow['protocol'],
            'legs': legs, 'service': service, 'outside': True}


def _seen_source(service, outside_ip, networks, endpoint):
    """The source endpoint sees: the outside host's own address with
    externalTrafficPolicy Local, else the entry node's masquerade (None
    when the entry node's network is not known)."""
    if service['external_local']:
        return outside_ip
    entry = service['node']
    return masquerade_source((networks or {}).get(entry) or {}, endpoint['node'] == entry)


def masquerade_source(network, same_node):
    """The address the entry node's masquerade gives a packet to an
    endpoint, as the kernel picks it from the interface it leaves by: on
    the same node cni0's (the pods' gateway, the pod CIDR's first address),
    else flannel.1's (vxlan) or the underlay's (host-gw). network: the
    node's {backend, pod_cidr, vtep (podnet_facts vtep), underlay}; None
    when it does not say."""
    if same_node:
        cidr = network.get('pod_cidr')
        return str(ipaddress.IPv4Network(cidr).network_address + 1) if cidr else None
    if network.get('backend') == 'vxlan':
        address = (network.get('vtep') or {}).get('address')
        address = address[0] if isinstance(address, list) and address else address
        return address.split('/')[0] if isinstance(address, str) else None
    return network.get('underlay')


def trace_option(service):
    return {k: service[k] for k in ('key', 'kind', 'ip', 'port', 'protocol', 'external_local', 'endpoints',
                                    'endpoint', 'why')}


def _trace_dest(pod):
    return {k: pod[k] for k in ('key', 'ip', 'mac', 'netns', 'veth')}


# -- on the entry node: the DNAT, read from the live table ---------------------------------

def dnat_hops(ruleset, external, client_ip):
    """(hops, rejected, marked): the node's dispatch of the external port
    to its ext chain, the chain's policy (Cluster: marked for masquerade,
    all endpoints; Local: this node's only, the client's address kept), the
    pick and the DNAT of the endpoint followed; marked None when they stop
    it. external: the podnet_trace option."""
    at = services_table.TABLE
    if ruleset is None or not nfteval.has_table(ruleset, services_table.FAMILY, services_table.NAME):
        return [hop(at, 'missing', 'no Services table on this node: nothing DNATs %s' % _dialled(external))], \
            False, None
    sets = servicepath.items(ruleset, 'set') + servicepath.items(ruleset, 'map')
    proto = external['protocol'].lower()
    if external['kind'] == NODE_PORT:
        served, refused, element = 'service-nodeports', 'no-endpoint-nodeports', (proto, external['port'])
    else:
        served, refused, element = 'service-ips', 'no-endpoint-services', (external['ip'], proto, external['port'])
    shown = ' . '.join(str(part) for part in element)
    chain = servicepath.lookup(sets, served, element)
    if chain is None:
        stop, rejected = _not_dispatched(sets, refused, element, shown, external)
        return [stop], rejected, None
    rules = _rules(ruleset, chain)
    marked = any(_is_jump(expressions, 'mark-for-masquerade') for expressions in rules)
    onward = _goto_target(rules[-1]) if rules else None
    hops = [hop(at, 'nat prerouting, chain services: %s: %s : goto %s (Service %s, %s)' % (
        served, shown, chain, external['key'], _dialled(external))),
        hop(at, _policy_says(chain, marked, onward, external), None if onward else
            'chain %s goes nowhere: converge (site.yml)' % chain)]
    if onward:
        hops += servicepath.choice_hops(ruleset, sets, onward, _rules(ruleset, onward), external, client_ip)
    return hops, False, marked


def _policy_says(chain, marked, onward, external):
    if marked:
        return ('chain %s: externalTrafficPolicy Cluster: jump mark-for-masquerade (mark %#x), goto %s: any '
                'endpoint, on any node' % (chain, services_table.MASQUERADE_MARK, onward))
    return ('chain %s: externalTrafficPolicy Local: the client is not this node (fib saddr type local), goto %s: '
            'only this node\'s endpoints, unmarked, so the client\'s address is kept' % (chain, onward))


def masquerade_hop(marked, client_ip, address=None, dev=None):
    """The nat postrouting chain `masquerading`: what the endpoint sees.
    address: what masquerade gives the packet leaving by dev (None: not
    read)."""
    at = services_table.TABLE
    if marked:
        to = ' to %s, %s\'s address' % (address, dev) if address else ''
        seen = address or 'the node\'s address on %s' % (dev or 'the way out')
        return hop(at, 'nat postrouting, chain masquerading: mark %#x set: masquerade fully-random%s: the endpoint '
                   'sees %s, not %s' % (services_table.MASQUERADE_MARK, to, seen, client_ip))
    return hop(at, 'nat postrouting, chain masquerading: not marked, not masqueraded: the endpoint sees the '
               'client %s' % client_ip)


def _not_dispatched(sets, refused, element, shown, external):
    """(the hop that stops it, rejected)."""
    verdict = servicepath.lookup(sets, refused, element)
    at = services_table.TABLE
    if verdict == 'reject-chain':
        return hop(at, '%s: %s : goto reject-chain' % (refused, shown), servicepath.REJECTED), True
    if verdict == 'drop':
        return hop(at, '%s: %s : drop' % (refused, shown),
                   'externalTrafficPolicy Local and no endpoint of %s on this node: dropped' % external['key']), False
    return hop(at, '%s holds no %s' % (refused.replace('no-endpoint', 'service'), shown),
               'the node does not serve %s (its table is older than the Service): converge (site.yml)'
               % _dialled(external)), False


def _dialled(external):
    return '%s:%d' % (external['ip'], external['port'])


def _rules(ruleset, chain):
    return [r['expr'] for r in servicepath.items(ruleset, 'rule') if r['chain'] == chain]


def _is_jump(expressions, target):
    """A rule that is only `jump target` (not behind a match)."""
    return len(expressions) == 1 and expressions[0].get('jump', {}).get('target') == target


def _goto_target(expressions):
    last = expressions[-1] if expressions else {}
    return last.get('goto', {}).get('target')


def read_as_hops(node, read_from, seen):
    """Nothing when the endpoint's node was read with the source the entry
    node gives the packet; else the hop that says its half is not the
    packet's."""
    if read_from == seen:
        return []
    return [hop(node, 'read for a packet from %s' % read_from,
                'the entry node sends it from %s: this half is not the packet\'s (a node address podnet_facts did '
                'not report?)' % seen)]


def reverse_nat_hop(service, client_ip, seen_source):
    """The reply un-NATed by the entry node's conntrack: the endpoint
    answers the source it saw, and the outside host sees only the node's
    address and the port it dialled."""
    endpoint = service['endpoint']
    undone = 'the DNAT and the masquerade' if not service['external_local'] else 'the DNAT'
    says = 'the reply %s:%d -> %s reaches the outside host as %s -> %s: conntrack undoes %s (reverse NAT)' % (
        endpoint['ip'], endpoint['port'], seen_source or 'the node', _dialled(service), client_ip, undone)
    return hop('%s conntrack' % service['node'], says)
