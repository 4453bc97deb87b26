"""The path explainer on the controller (playbooks/explain.yml): check the
user's from/to/port/protocol against the live pods and Services, say which
node reads which half of the path (podnet_trace), then put the halves, the
lab fabric, the NetworkPolicy verdicts and the probe's outcome in order.
To a Service, the path follows one endpoint after the DNAT hop
(servicepath.py).

A path is a list of hops {at, says, problem}; the first hop with a problem
is where the packet stops. The prediction is "delivered" when no hop has a
problem and both policy sides allow, "refused" when a Service without
endpoints rejects it; a probe that disagrees is flagged.
"""
import ipaddress
import re
from dataclasses import dataclass

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import outsidepath, servicepath
from ansible.module_utils.podnet.explain.reachability import REFUSED
from ansible.module_utils.podnet.policy import netpol

PROTOCOLS = ('TCP', 'UDP', 'SCTP')
POD_KEY = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$')


@dataclass(frozen=True)
class Request:
    """What the user asks: -e from=, to= (a pod, an address, svc/ns/name or
    a ClusterIP), dport=, protocol= and, for a Service, endpoint= (the
    endpoint pod to follow)."""
    source: str
    destination: str
    port: object = None
    protocol: str = None
    endpoint: str = None
    via: str = None


def locate(pods_by_node, request, services_by_node=None, lab=None, networks=None):
    """{source, destination, port, protocol, legs[, service]}; legs: {node:
    the podnet_trace options of its half}. services_by_node: each node's
    podnet_facts `services`; the source's node's say what a Service target
    is, since that node DNATs. networks: from the outside host, each node's
    {backend, pod_cidr, vtep, underlay}, for the address it masquerades to.
    Raises SpecError naming the argument before anything is sent."""
    pods = {key: dict(pod, key=key, node=node)
            for node, found in pods_by_node.items() for key, pod in found.items()}
    protocol = _protocol(request.protocol)
    if request.source == outsidepath.OUTSIDE:
        return _locate_outside(pods, request, protocol, services_by_node or {}, lab or {}, networks)
    if request.via:
        raise SpecError('via', 'only from the outside host (-e from=outside)')
    src = _pod(pods, 'from', request.source)
    service = servicepath.target((services_by_node or {}).get(src['node']), request.destination,
                                 request.port, protocol, src['node'])
    if service:
        return _locate_service(pods, src, service, request.endpoint)
    if request.endpoint:
        raise SpecError('endpoint', 'only for a Service target (to=svc/<namespace>/<name> or its ClusterIP)')
    dst = _destination(pods, request.destination)
    port = _port(request.port, dst, protocol)
    flow = {'src': src['ip'], 'dst': dst['ip'], 'port': port, 'protocol': protocol}
    legs = {src['node']: dict(flow, source_pod=_trace_pod(src), probe=True)}
    if dst['key'] == src['key']:
        pass  # over lo inside the pod: no node is crossed
    else:
        _destination_leg(legs, src, dst, flow)
    return {'source': src, 'destination': dst, 'port': port, 'protocol': protocol, 'legs': legs}


def _destination_leg(legs, src, dst, flow):
    """The destination pod's half: on the source's leg when it runs on the
    same node, else a leg of its own node."""
    if dst.get('node') == src['node']:
        legs[src['node']]['destination_pod'] = _trace_dest(dst)
    elif dst.get('node'):
        legs[dst['node']] = dict(flow, destination_pod=_trace_dest(dst))


def _locate_service(pods, src, service, wanted):
    """A Service target: the path follows one endpoint pod (the packet's
    destination after DNAT, on the source's node); the probe and the
    source pod's own route go to the ClusterIP."""
    endpoint, why = servicepath.follow(service, wanted)
    service = dict(service, endpoint=endpoint, why=why)
    if endpoint is None:  # the source's node rejects it: no other node is crossed
        dst = {'key': servicepath.label(service), 'ip': service['ip'], 'node': None}
        flow = {'src': src['ip'], 'dst': service['ip'], 'port': service['port'], 'protocol': service['protocol']}
    else:
        if endpoint['pod'] not in pods:
            raise SpecError('to', 'endpoint %s of Service %s runs on no node: the Services table is older '
                            'than the pods; converge (site.yml)' % (endpoint['pod'], service['key']))
        dst = pods[endpoint['pod']]
        flow = {'src': src['ip'], 'dst': endpoint['ip'], 'port': endpoint['port'], 'protocol': service['protocol']}
    legs = {src['node']: dict(flow, source_pod=_trace_pod(src), probe=True, service=_trace_service(service))}
    if endpoint is not None:
        _destination_leg(legs, src, dst, flow)
    return {'source': src, 'destination': dst, 'port': flow['port'], 'protocol': flow['protocol'],
            'legs': legs, 'service': service}


def _locate_outside(pods, request, protocol, services_by_node, lab, networks):
    """From the lab's outside host to a NodePort or LoadBalancer port
    (outsidepath.py). lab: {name, underlay: {node: address}, outside: the
    outside host's address}, as explain.yml passes it."""
    outside_ip = lab.get('outside')
    if not outside_ip:
        raise SpecError('from', 'the inventory declares no outside host (podnet_lab.outside.host_ip): '
                        'there is nothing to explain from')
    service = outsidepath.target(services_by_node, lab.get('underlay') or {}, request.destination, request.via,
                                 request.port, protocol)
    return outsidepath.locate(pods, service, outside_ip, request.endpoint, networks)


def _trace_service(service):
    return {k: service[k] for k in ('key', 'ip', 'port', 'endpoints', 'endpoint', 'why')}


def _pod(pods, argument, key):
    if not key:
        raise SpecError(argument, 'missing: give -e %s=<namespace>/<name>' % argument)
    if not isinstance(key, str) or not POD_KEY.match(key):
        raise SpecError(argument, '%r is not a pod as namespace/name' % (key,))
    if key not in pods:
        raise SpecError(argument, 'no pod %s runs in the cluster (pods: %s)' % (
            key, ', '.join(sorted(pods)) or 'none'))
    if not pods[key].get('ip'):
        raise SpecError(argument, 'pod %s has no IP (its sandbox is not wired)' % key)
    return pods[key]


def _destination(pods, value):
    if not value:
        raise SpecError('to', 'missing: give -e to=<namespace>/<name> or -e to=<IPv4 address>')
    if isinstance(value, str) and '/' in value:
        return _pod(pods, 'to', value)
    try:
        address = str(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        raise SpecError('to', '%r is neither a pod (namespace/name) nor an IPv4 address' % (value,)) \
            from None
    return next((p for p in pods.values() if p.get('ip') == address), {'key': address, 'ip': address})


def _protocol(protocol):
    chosen = str(protocol or 'TCP').upper()
    if chosen not in PROTOCOLS:
        raise SpecError('protocol', '%r must be one of %s' % (protocol, ', '.join(PROTOCOLS)))
    return chosen


def _port(port, dst, protocol):
    """The given port, else the first the destination pod declares for the
    protocol, else 80."""
    if port in (None, ''):
        declared = [p['containerPort'] for p in dst.get('ports') or ()
                    if p.get('protocol', 'TCP') == protocol]
        return declared[0] if declared else 80
    try:
        number = int(str(port), 10)
    except ValueError:
        raise SpecError('port', '%r is not a port number' % (port,)) from None
    if not 1 <= number <= 65535:
        raise SpecError('port', '%d is not a port from 1 to 65535' % number)
    return number


def _trace_pod(pod):
    return {k: pod[k] for k in ('key', 'netns', 'veth')}


def _trace_dest(pod):
    return {k: pod[k] for k in ('key', 'ip', 'mac', 'netns', 'veth')}


def policy_sides(source_record, located):
    """The egress and ingress verdicts, each a hop, from the policies the
    nodes enforce (None: no policy record, nothing enforced)."""
    if not source_record:
        return None, [{'at': 'NetworkPolicy', 'says': 'no policy record on the nodes: '
                       'nothing is enforced', 'problem': None}]
    policies = [netpol.parse_policy(raw) for raw in source_record['policies']]
    cluster = netpol.Cluster(source_record['pods'], source_record['namespaces'])
    records = {'%(namespace)s/%(name)s' % p: p for p in source_record['pods']}
    src, dst = located['source'], located['destination']
    decision = netpol.decide(records.get(src['key'], src['ip']), records.get(dst['key'], dst['ip']),
                             located['port'], located['protocol'], cluster, policies)
    return decision, [{'at': 'NetworkPolicy %s' % side.direction.lower(), 'says': side.reason,
                       'problem': None if side.allowed else 'denied: %s' % side.reason}
                      for side in (decision.egress, decision.ingress) if side is not None]


def fabric_hops(fabric, src_node, dst_node, target):
    """The lab fabric from src_node to dst_node's underlay address target
    (or, dst_node None, to the address target outside the cluster), read
    live in its namespace: Netns of pathtrace, or None when the nodes are
    not on a podnet lab."""
    if fabric is None:
        return [{'at': 'underlay', 'says': 'the network between %s and %s is not a podnet lab: '
                 'not visible from here' % (src_node, dst_node or target), 'problem': None}]
    route, why = fabric.route_get(target)
    if route is None:
        return [{'at': 'fabric', 'says': 'ip route get %s' % target,
                 'problem': 'the fabric has no route to %s: %s' % (target, why)}]
    if dst_node is None:
        says, down = fabric.link_says(route['dev'])
        return [{'at': 'fabric router', 'says': 'ip route get %s: dev %s%s; %s' % (
            target, route['dev'], ' via %s' % route['via'] if route['via'] else '', says),
            'problem': down}]
    dst_underlay = target
    port = names.fabric_port(dst_node)
    says, down = fabric.link_says(port)
    bridge = route['dev']
    on_bridge = port in fabric.links and fabric.names.get(
        fabric.links[port].get('IFLA_MASTER')) == bridge
    via = ' via %s' % route['via'] if route['via'] else ''
    return [{'at': 'fabric %s' % bridge, 'says': 'rack switch (the fabric routes %s to it%s)' % (dst_underlay, via),
             'problem': None},
            {'at': 'fabric %s' % port, 'says': '%s, the port of %s' % (says, dst_node),
             'problem': down or (None if on_bridge else '%s is not on %s' % (port, bridge))}]


def outcome_hop(probe, decision, path_ok, located, rejected=False):
    """The probe's outcome against the prediction; disagreement flagged.
    rejected: the source's node rejects it (a Service without endpoints),
    so the prediction is a refusal."""
    service = located.get('service')
    if service:
        says = servicepath.probe_says(probe, service)
    else:
        seen = probe.get('seen_source')
        says = '%s: %s%s' % (located['destination']['key'], probe['outcome'],
                             ', the destination saw source %s' % seen if seen else '')
    if rejected:
        predicted, agree = REFUSED, probe['outcome'] == REFUSED
    else:
        predicted = path_ok and (decision is None or decision.allowed)
        agree = predicted == probe['delivered']
        predicted = 'delivered' if predicted else 'stopped'
    expected = (service or {}).get('sources', {}).get(probe.get('endpoint'))
    if agree and probe.get('seen_source') and expected and probe['seen_source'] != expected:
        agree, predicted = False, 'source %s' % expected
    return {'at': 'probe', 'says': says, 'problem': None if agree else
            'DISAGREES with the prediction (%s)' % predicted}, agree


def first_problem(hops):
    return next((h for h in hops if h['problem']), None)


def lines(hops):
    """One line per hop, like traceroute, problems marked."""
    width = max((len(h['at']) for h in hops), default=0)
    return ['%2d  %-*s  %s%s' % (i, width, h['at'], h['says'],
                                 '  <-- %s' % h['problem'] if h['problem'] else '')
            for i, h in enumerate(hops, 1)]
