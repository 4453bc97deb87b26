"""Services as probe targets (playbooks/probe.yml -e probe_services=...):
one column per Service port, `svc <namespace>/<name>:<port>`, probed from
every pod at the ClusterIP and port, as a client connects, so the truth
tables show which pods reach which Services.

The Services come from a node's record (podnet_facts `services`). The
NetworkPolicy model judges a Service cell the way Kubernetes does, after
DNAT, at the endpoints: it is allowed when the model allows the client to
reach every endpoint of the port, denied when it allows none, and left
undecided when it allows some (the kernel picks an endpoint per
connection, so either outcome is right), when there is no endpoint (the
Services table rejects it; no policy judges) or when the client is an
endpoint (hairpin: masqueraded, its policy sees the node's address).
"""
from ansible.module_utils.podnet.core.errors import SpecError

PREFIX = 'svc '
ALL = 'all'
# The Services table masquerades a pod that reaches itself through its
# Service (as kube-proxy does), so its own policy judges the node's address.
HAIRPIN = 'hairpin: the client is an endpoint, masqueraded to its node\'s address; the model does not judge it'
RULE = ('svc columns: the policy model judges the endpoints after DNAT; allowed when it allows every '
        'endpoint, denied when it allows none, not judged when it allows some, there is none or the client is one')


def is_service(key):
    return key.startswith(PREFIX)


def column(service_key, port):
    return '%s%s:%d' % (PREFIX, service_key, port)


def parse(key):
    """(service key, port) of a column."""
    service_key, port = key[len(PREFIX):].rsplit(':', 1)
    return service_key, int(port)


def plan(services, wanted):
    """[{key, ip, port, protocol}], one per port of each Service wanted
    (names, or `all`: every Service with a ClusterIP), sorted; the names
    are checked first. services: a node's podnet_facts `services`."""
    if not wanted:
        return []
    services = services or {}
    if not services:
        raise SpecError('probe_services', 'the nodes serve no Services (converge manifests with '
                        'Services, e.g. manifests/services)')
    if ALL in wanted:
        names = [k for k in sorted(services) if services[k].get('cluster_ip')]
    else:
        names = sorted(set(wanted))
    for name in names:
        if name not in services:
            raise SpecError('probe_services', 'no Service %s in the cluster (Services: %s)' % (
                name, ', '.join(sorted(services))))
        if not services[name].get('cluster_ip'):
            raise SpecError('probe_services', 'Service %s is headless (clusterIP: None): no ClusterIP to '
                            'probe; its pods are columns already' % name)
    return [{'key': column(name, port['port']), 'ip': services[name]['cluster_ip'], 'port': port['port'],
             'protocol': port['protocol']} for name in names for port in services[name]['ports']]


def model_cell(decide, client, services, key, protocol):
    """(allowed, reason) of one Service cell by the policy model.
    decide(client, pod, port, protocol): the netpol decision, None when the
    model does not hold a pod."""
    service_key, number = parse(key)
    service = (services or {}).get(service_key)
    port = next((p for p in (service or {}).get('ports', ())
                 if p['port'] == number and p['protocol'] == protocol), None)
    if port is None:
        return None, 'not in the Services record'
    if not port['endpoints']:
        return None, 'no endpoints: the Service rejects, no policy judges'
    if any(e['pod'] == client for e in port['endpoints']):
        return None, HAIRPIN
    decisions = [(e['pod'], decide(client, e['pod'], e['port'], protocol)) for e in port['endpoints']]
    if any(entry[1] is None for entry in decisions):
        return None, 'an endpoint is not in the policy record'
    allowed = [pod for pod, decision in decisions if decision.allowed]
    if len(allowed) == len(decisions):
        return True, 'every endpoint allowed after DNAT: %s' % decisions[0][1].reason
    if not allowed:
        return False, 'every endpoint denied after DNAT: %s' % decisions[0][1].reason
    return None, 'allowed to %d of %d endpoints (%s): the kernel picks one per connection' % (
        len(allowed), len(decisions), ', '.join(allowed))
