"""A path to a Service: the target checked against the Services the
source's node serves (podnet_facts `services`), the endpoint the
explanation follows, and the DNAT hop read from the node's live table
`ip podnet-services` (services/ruleset.py lays it out as kube-proxy's
nftables mode does).

The kernel picks an endpoint per connection (`numgen random`, or the
endpoint a ClientIP affinity set remembers), so a path can only follow one:
the first by pod name (the numgen map's 0), or the one the user names with
`-e endpoint=`. The probe goes to the ClusterIP, as a client's connection
does, and conntrack says which endpoint the kernel took. NetworkPolicy
judges that endpoint pod, after DNAT, as in Kubernetes.
"""
import ipaddress
import re

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel import nfteval
from ansible.module_utils.podnet.services import ruleset as services_table
from ansible.module_utils.podnet.services.spec import SERVICE_CIDR

PREFIX = 'svc/'
KEY = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
REJECTED = 'no endpoints: rejected (ICMP port unreachable)'


def hop(at, says, problem=None):
    return {'at': at, 'says': says, 'problem': problem}


# -- on the controller: the target, its port and the endpoint followed ------------------

def target(services, value, port, protocol, source_node):
    """The Service `to` names (svc/ns/name, or a ClusterIP), with the port
    asked for and the endpoints the source's node picks among; None when
    `to` is no Service. services: the source node's podnet_facts `services`."""
    if isinstance(value, str) and value.startswith(PREFIX):
        key = value[len(PREFIX):]
        if not KEY.match(key):
            raise SpecError('to', '%r is not a Service as svc/<namespace>/<name>' % value)
        service = _known(services, key)
    else:
        service = _by_cluster_ip(services, value)
        if service is None:
            return None
        key = service[0]
        service = service[1]
    if not service.get('cluster_ip'):
        raise SpecError('to', 'Service %s is headless (clusterIP: None): nothing DNATs it; '
                        'explain one of its pods instead' % key)
    chosen = find_port(key, service, port, protocol)
    endpoints = [e for e in chosen['endpoints']
                 if not service.get('internal_local') or e['node'] == source_node]
    return {'key': key, 'type': service['type'], 'ip': service['cluster_ip'], 'port': chosen['port'],
            'name': chosen['name'], 'protocol': chosen['protocol'], 'endpoints': endpoints,
            'affinity_timeout': service.get('affinity_timeout'),
            'internal_local': bool(service.get('internal_local'))}


def _known(services, key):
    if not services:
        raise SpecError('to', 'no Service %s: the source\'s node serves no Services (converge '
                        'manifests with Services, e.g. manifests/services)' % key)
    if key not in services:
        raise SpecError('to', 'no Service %s in the cluster (Services: %s)' % (key, ', '.join(sorted(services))))
    return services[key]


def _by_cluster_ip(services, value):
    """(key, Service) whose ClusterIP is value; None when value is no
    address of the service CIDR (a pod's, or one outside the cluster)."""
    try:
        address = ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        return None
    if address not in ipaddress.IPv4Network(SERVICE_CIDR):
        return None
    found = next(((k, s) for k, s in sorted((services or {}).items()) if s.get('cluster_ip') == str(address)), None)
    if found is None:
        raise SpecError('to', '%s is in the service CIDR %s, but no Service has it (ClusterIPs: %s)' % (
            address, SERVICE_CIDR, ', '.join('%s %s' % (s['cluster_ip'], k) for k, s in sorted(
                (services or {}).items()) if s.get('cluster_ip')) or 'none'))
    return found


def find_port(key, service, port, protocol):
    """The Service port asked for (its number or its name), else its first
    port of the protocol."""
    ports = [p for p in service['ports'] if p['protocol'] == protocol]
    listed = ', '.join('%s/%d%s' % (p['protocol'], p['port'], ' (%s)' % p['name'] if p['name'] else '')
                       for p in service['ports']) or 'none'
    if port in (None, ''):
        if not ports:
            raise SpecError('port', 'Service %s has no %s port (its ports: %s)' % (key, protocol, listed))
        return ports[0]
    wanted = str(port)
    found = next((p for p in ports if str(p['port']) == wanted or p['name'] == wanted), None)
    if found is None:
        raise SpecError('port', 'Service %s has no %s port %r (its ports: %s)' % (key, protocol, wanted, listed))
    return found


def follow(service, wanted=None):
    """(endpoint, why) the path follows: the one asked for, else the first
    by pod name; (None, None) when the port has no endpoint."""
    endpoints = service['endpoints']
    if wanted:
        found = next((e for e in endpoints if e['pod'] == wanted), None)
        if found is None:
            raise SpecError('endpoint', '%s is no endpoint of Service %s port %d (endpoints: %s)' % (
                wanted, service['key'], service['port'], ', '.join(e['pod'] for e in endpoints) or 'none'))
        return found, 'as asked (-e endpoint=%s)' % wanted
    if not endpoints:
        return None, None
    if len(endpoints) == 1:
        return endpoints[0], 'its only endpoint'
    return endpoints[0], ('the first by pod name, the numgen map\'s 0; the kernel picks per connection, the '
                          'probe says which it took, -e endpoint=<pod> follows another')


def label(service):
    return 'svc %s %s:%d' % (service['key'], service['ip'], service['port'])


def reverse_nat_hop(node, service, client_ip):
    """The reply un-NATed: conntrack on the client's node gives it the
    ClusterIP's address back, so the client sees only the Service."""
    endpoint = service['endpoint']
    return hop('%s conntrack' % node, 'the reply %s:%d -> %s reaches the client as %s:%d -> %s: conntrack '
               'undoes the DNAT (reverse NAT), the client sees only the ClusterIP' % (
                   endpoint['ip'], endpoint['port'], client_ip, service['ip'], service['port'], client_ip))


def probe_says(probe, service):
    """What the probe to the ClusterIP met, the endpoint conntrack says the
    kernel took, and the source that endpoint saw."""
    says = '%s: %s' % (label(service), probe['outcome'])
    chosen = probe.get('endpoint')
    if chosen:
        by_address = {'%(ip)s:%(port)d' % e: e['pod'] for e in service['endpoints']}
        says += '; the kernel chose %s (%s)' % (by_address.get(chosen, 'an endpoint podnet does not know'), chosen)
        followed = service['endpoint']
        if followed and chosen != '%(ip)s:%(port)d' % followed:
            says += ', the path above follows %s' % followed['pod']
    if probe.get('seen_source'):
        says += ', which saw source %s' % probe['seen_source']
    return says


# -- on the source's node: the DNAT, read from the live table -----------------------------

def dnat_hops(ruleset, service, client_ip, protocol):
    """(hops, rejected): the Service table's dispatch of the ClusterIP and
    port, the endpoint chain's choice and the DNAT to the endpoint the path
    follows; rejected when the table rejects it for want of endpoints.
    ruleset: `nft -j list ruleset`; service: the podnet_trace option."""
    at = services_table.TABLE
    if ruleset is None or not nfteval.has_table(ruleset, services_table.FAMILY, services_table.NAME):
        return [hop(at, 'missing', 'no Services table on this node: nothing DNATs %s' % label(service))], False
    sets = items(ruleset, 'set') + items(ruleset, 'map')
    element = (service['ip'], protocol.lower(), service['port'])
    shown = '%s . %s . %d' % element
    chain = lookup(sets, 'service-ips', element)
    if chain is None:
        return [_not_dispatched(sets, element, shown)], lookup(sets, 'no-endpoint-services', element) == 'reject-chain'
    rules = [r['expr'] for r in items(ruleset, 'rule') if r['chain'] == chain]
    dispatch = hop(at, 'service-ips: %s : goto %s (Service %s)' % (shown, chain, service['key']))
    return [dispatch] + choice_hops(ruleset, sets, chain, rules, service, client_ip), False


def _not_dispatched(sets, element, shown):
    verdict = lookup(sets, 'no-endpoint-services', element)
    at = services_table.TABLE
    if verdict == 'reject-chain':
        return hop(at, 'no-endpoint-services: %s : goto reject-chain' % shown, REJECTED)
    if verdict == 'drop':
        return hop(at, 'no-endpoint-services: %s : drop' % shown,
                   'no endpoint serves it from this node (internalTrafficPolicy Local): dropped')
    return hop(at, 'service-ips holds no %s' % shown, 'the node does not serve %s (its table is older than the '
               'Service, or the port is not the Service\'s): rejected or dropped by cluster-ips-check' % shown)


def choice_hops(ruleset, sets, chain, rules, service, client_ip):
    """How the chain picks an endpoint, then the DNAT of the followed one."""
    at = services_table.TABLE
    picks = _picks(rules)
    targets = {ep: _dnat_target(ruleset, ep) for ep in picks}
    named = {'%(ip)s:%(port)d' % e: e for e in service['endpoints']}
    listed = ', '.join('%s %s (%s)' % (named[t]['pod'], t, named[t]['node']) if t in named else t
                       for t in (targets[ep] for ep in picks))
    if len(picks) == 1:
        says = 'chain %s: goto its one endpoint: %s' % (chain, listed)
    else:
        says = 'chain %s: numgen random mod %d, 1/%d each, over %d endpoints: %s' % (
            chain, len(picks), len(picks), len(picks), listed)
    affinity = _affinity(sets, rules, client_ip)
    if affinity:
        says += '; ClientIP affinity first: %s' % affinity[0]
    followed = service['endpoint']
    if followed is None:
        return [hop(at, says, 'the record holds no endpoint the table dispatches to: converge (site.yml)')]
    wanted = '%(ip)s:%(port)d' % followed
    by_target = {t: ep for ep, t in targets.items()}
    missing = None if wanted in by_target else 'the chain holds no endpoint %s (%s): the table is older than ' \
        'the record; converge (site.yml)' % (wanted, followed['pod'])
    hops = [hop(at, says, missing)]
    if missing:
        return hops
    follows = 'chain %s: dnat to %s, %s on %s: the path follows it (%s)' % (
        by_target[wanted], wanted, followed['pod'], followed['node'], service['why'])
    if affinity and affinity[1] and affinity[1] != by_target[wanted]:
        follows += '; this client\'s affinity sends it to %s now' % targets[affinity[1]]
    if followed['ip'] == client_ip:
        follows += '; the client is this endpoint (hairpin): masqueraded, so the reply comes back through the node'
    return hops + [hop(at, follows)]


def _picks(rules):
    """The endpoint chains the chain's last rule picks among, in numgen order."""
    for expressions in reversed(rules):
        for expression in expressions:
            if 'vmap' in expression and 'numgen' in expression['vmap'].get('key', {}):
                entries = sorted(expression['vmap']['data']['set'], key=lambda entry: entry[0])
                return [_goto(entry[1]) for entry in entries]
            if 'goto' in expression:
                return [expression['goto']['target']]
    return []


def _affinity(sets, rules, client_ip):
    """(how affinity decides, the endpoint chain this client is stuck to
    or None), or None when the chain has no affinity sets."""
    remembered = [(e[0]['match']['right'][1:], e[1]['goto']['target']) for e in rules
                  if len(e) == 2 and 'match' in e[0] and str(e[0]['match']['right']).startswith('@aff-')
                  and 'goto' in e[1]]
    if not remembered:
        return None
    by_name = {s['name']: s for s in sets}
    timeout = by_name.get(remembered[0][0], {}).get('timeout')
    stuck = next((chain for name, chain in remembered
                  if client_ip in [_elem_value(e) for e in by_name.get(name, {}).get('elem', [])]), None)
    how = 'a client seen within %ss goes back to its endpoint' % timeout
    return ('%s (this client: %s)' % (how, 'remembered' if stuck else 'not seen yet, numgen picks')), stuck


def _dnat_target(ruleset, chain):
    for rule in items(ruleset, 'rule'):
        if rule['chain'] == chain:
            for expression in rule['expr']:
                if 'dnat' in expression:
                    return '%s:%s' % (expression['dnat']['addr'], expression['dnat']['port'])
    return chain


def items(ruleset, kind):
    """The Services table's objects of kind (`set`, `map`, `rule`) in `nft -j` form."""
    return [i[kind] for i in ruleset.get('nftables', []) if kind in i and i[kind].get('table') == services_table.NAME]


def lookup(sets, name, element):
    """The verdict (a goto's chain, or `drop`) of element in map name, or None."""
    for found in sets:
        if found['name'] != name:
            continue
        for key, verdict in found.get('elem', []):
            if tuple(key['concat']) == element:
                return _goto(verdict)
    return None


def _goto(verdict):
    if 'goto' in verdict:
        return verdict['goto']['target']
    return next(iter(verdict))


def _elem_value(elem):
    return elem['elem']['val'] if isinstance(elem, dict) and 'elem' in elem else elem
