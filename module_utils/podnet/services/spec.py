"""Services (v1) read as the API server reads them, and their addresses.

A Service gets its ClusterIP from the service CIDR (10.43.0.0/16, as in
k3s) and each NodePort or LoadBalancer port a node port (30000-32767) here,
on the controller, before anything changes: deterministically, by a hash of
its name, so re-runs agree without an API server to remember them. An
address or port the manifest sets is kept, and refused when taken twice or
out of range, naming the object and field, as the API server's allocators
refuse it.
"""
import ipaddress
from dataclasses import dataclass

from ansible.module_utils.podnet.core import k8s, names
from ansible.module_utils.podnet.core.errors import SpecError

SERVICE_CIDR = '10.43.0.0/16'
DNS_IP = '10.43.0.10'  # k3s's cluster DNS
NODE_PORTS = (30000, 32767)
TYPES = ('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName')
EXTERNAL_TYPES = ('NodePort', 'LoadBalancer')
HEADLESS = 'None'
AFFINITY_DEFAULT = 10800  # sessionAffinityConfig.clientIP.timeoutSeconds, as the API server defaults it
AFFINITY_MAX = 86400
SPEC = ('type', 'clusterIP', 'clusterIPs', 'ports', 'selector', 'sessionAffinity', 'sessionAffinityConfig',
        'externalTrafficPolicy', 'internalTrafficPolicy', 'publishNotReadyAddresses', 'externalName')
# Fields that change nothing here: one address family, no cloud load balancer.
SPEC_IGNORED = ('ipFamilies', 'ipFamilyPolicy', 'loadBalancerIP', 'loadBalancerSourceRanges',
                'loadBalancerClass', 'allocateLoadBalancerNodePorts', 'healthCheckNodePort',
                'externalIPs', 'trafficDistribution')
PORT = ('name', 'protocol', 'port', 'targetPort', 'nodePort', 'appProtocol')


@dataclass(frozen=True)
class ServicePort:
    name: object  # None for the one unnamed port
    protocol: str
    port: int
    target_port: object  # a number, or the name of a container port
    node_port: object = None  # NodePort and LoadBalancer only

    @property
    def key(self):
        """What names the port in endpoints and DNS: its name, else its number."""
        return self.name or str(self.port)


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str
    cluster_ip: object  # the manifest's clusterIP: None (allocate), 'None' (headless) or an address
    selector: object  # a label map, or None: endpoints are not podnet's to find
    ports: tuple
    affinity_timeout: object = None  # seconds of ClientIP affinity, None without
    external_local: bool = False  # externalTrafficPolicy: Local
    internal_local: bool = False  # internalTrafficPolicy: Local
    publish_not_ready: bool = False
    external_name: object = None
    subject: str = ''

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)

    @property
    def headless(self):
        return self.cluster_ip == HEADLESS or self.type == 'ExternalName'


def parse(raw, subject):
    meta = k8s.section(raw, 'metadata', subject)
    name = k8s.name(meta.get('name'), 'metadata.name', subject, label=True)
    namespace = k8s.namespace_of(meta, subject)
    spec = k8s.fields(raw.get('spec'), 'spec', subject, SPEC, SPEC_IGNORED)
    kind = spec.get('type') or 'ClusterIP'
    if kind not in TYPES:
        raise SpecError(subject, 'spec.type: %r is not one of %s' % (kind, ', '.join(TYPES)))
    cluster_ip = _cluster_ip(spec, kind, subject)
    ports = _ports(spec.get('ports'), kind, cluster_ip == HEADLESS, subject)
    selector = None if spec.get('selector') is None else k8s.labels(spec['selector'], 'spec.selector', subject)
    return Service(namespace, name, kind, cluster_ip, selector, ports, _affinity(spec, subject),
                   _traffic_policy(spec, 'externalTrafficPolicy', kind, subject),
                   _traffic_policy(spec, 'internalTrafficPolicy', kind, subject),
                   _flag(spec, 'publishNotReadyAddresses', subject), _external_name(spec, kind, subject), subject)


def _cluster_ip(spec, kind, subject):
    value, listed = spec.get('clusterIP'), spec.get('clusterIPs')
    if listed is not None:
        listed = k8s.items(listed, 'spec.clusterIPs', subject, str)
        if len(listed) > 1:
            raise SpecError(subject, 'spec.clusterIPs: podnet is IPv4 only (one address)')
        if listed and value not in (None, '', listed[0]):
            raise SpecError(subject, 'spec.clusterIPs: %r must start with spec.clusterIP %r' % (listed[0], value))
        value = value or (listed[0] if listed else None)
    if value in (None, ''):
        return None
    if kind == 'ExternalName':
        raise SpecError(subject, 'spec.clusterIP: must not be set for type ExternalName')
    if value == HEADLESS:
        if kind != 'ClusterIP':
            raise SpecError(subject, 'spec.clusterIP: None (headless) needs type ClusterIP, not %s' % kind)
        return value
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise SpecError(subject, 'spec.clusterIP: %r is not an IPv4 address, "None" or empty' % value) from None
    network = ipaddress.IPv4Network(SERVICE_CIDR)
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise SpecError(subject, 'spec.clusterIP: %s is not in the service CIDR %s' % (value, SERVICE_CIDR))
    return value


def _ports(raw, kind, headless, subject):
    items = k8s.items(raw, 'spec.ports', subject, dict)
    if not items and not headless and kind != 'ExternalName':
        raise SpecError(subject, 'spec.ports: required, at least one port (or clusterIP: None)')
    ports, seen, names = [], set(), set()
    for i, item in enumerate(items):
        port = _port(item, 'spec.ports[%d]' % i, kind, subject)
        if len(items) > 1 and port.name is None:
            raise SpecError(subject, 'spec.ports[%d].name: required when a Service has more than one port' % i)
        if port.name in names:
            raise SpecError(subject, 'spec.ports[%d].name: %r is used twice' % (i, port.name))
        if (port.port, port.protocol) in seen:
            raise SpecError(subject, 'spec.ports[%d]: %s/%d is declared twice' % (i, port.protocol, port.port))
        names.add(port.name)
        seen.add((port.port, port.protocol))
        ports.append(port)
    return tuple(ports)


def _port(raw, at, kind, subject):
    raw = k8s.fields(raw, at, subject, PORT)
    name = raw.get('name') or None
    if name is not None:
        k8s.name(name, at + '.name', subject, label=True)
    number = k8s.port_number(raw.get('port'), at + '.port', subject)
    target = raw.get('targetPort')
    if target is None or target == 0:
        target = number
    elif isinstance(target, str) and not target.isdigit():
        k8s.port_name(target, at + '.targetPort', subject)
    else:
        target = k8s.port_number(int(target), at + '.targetPort', subject)
    node_port = raw.get('nodePort')
    if node_port not in (None, 0):
        if kind not in EXTERNAL_TYPES:
            raise SpecError(subject, '%s.nodePort: only for type NodePort or LoadBalancer, not %s' % (at, kind))
        if isinstance(node_port, bool) or not isinstance(node_port, int) or \
                not NODE_PORTS[0] <= node_port <= NODE_PORTS[1]:
            raise SpecError(subject, '%s.nodePort: %r is not in the node port range %d-%d'
                            % (at, node_port, *NODE_PORTS))
    else:
        node_port = None
    return ServicePort(name, k8s.protocol(raw.get('protocol'), at + '.protocol', subject), number, target, node_port)


def _affinity(spec, subject):
    kind = spec.get('sessionAffinity') or 'None'
    if kind not in ('None', 'ClientIP'):
        raise SpecError(subject, 'spec.sessionAffinity: %r is not None or ClientIP' % kind)
    config = k8s.fields(spec.get('sessionAffinityConfig'), 'spec.sessionAffinityConfig', subject, ('clientIP',))
    client = k8s.fields(config.get('clientIP'), 'spec.sessionAffinityConfig.clientIP', subject,
                        ('timeoutSeconds',))
    timeout = client.get('timeoutSeconds')
    if kind == 'None':
        if timeout is not None:
            raise SpecError(subject, 'spec.sessionAffinityConfig: only with sessionAffinity ClientIP')
        return None
    if timeout is None:
        return AFFINITY_DEFAULT
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= AFFINITY_MAX:
        raise SpecError(subject, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds: %r must be 1 to %d'
                        % (timeout, AFFINITY_MAX))
    return timeout


def _traffic_policy(spec, field, kind, subject):
    value = spec.get(field)
    if value is None:
        return False
    if value not in ('Cluster', 'Local'):
        raise SpecError(subject, 'spec.%s: %r is not Cluster or Local' % (field, value))
    if field == 'externalTrafficPolicy' and kind not in EXTERNAL_TYPES:
        raise SpecError(subject, 'spec.externalTrafficPolicy: only for type NodePort or LoadBalancer, not %s'
                        % kind)
    return value == 'Local'


def _flag(spec, field, subject):
    value = spec.get(field, False)
    if not isinstance(value, bool):
        raise SpecError(subject, 'spec.%s: %r must be true or false' % (field, value))
    return value


def _external_name(spec, kind, subject):
    value = spec.get('externalName')
    if kind != 'ExternalName':
        if value:
            raise SpecError(subject, 'spec.externalName: only for type ExternalName')
        return None
    return k8s.name(value, 'spec.externalName', subject)


# -- addresses, on the controller -------------------------------------------------
def allocate(services):
    """{service key: ClusterIP or None} and {(service key, port index): node
    port}: what the manifests set is kept; the rest is a hash of the name,
    probing on to the next free one. Refuses an address or port taken twice."""
    cluster_ips = _allocate_ips(services)
    node_ports = _allocate_node_ports(services)
    return cluster_ips, node_ports


def _allocate_ips(services):
    network = ipaddress.IPv4Network(SERVICE_CIDR)
    base, size = int(network.network_address), network.num_addresses
    reserved = {base + 1: 'the first address (kubernetes.default)'}
    taken, found = {}, {}
    for service in services:
        if service.cluster_ip not in (None, HEADLESS) and not service.headless:
            number = int(ipaddress.IPv4Address(service.cluster_ip))
            if number in taken:
                raise SpecError(service.subject, 'spec.clusterIP: %s is also the clusterIP of Service %s'
                                % (service.cluster_ip, taken[number]))
            taken[number] = service.key
            found[service.key] = service.cluster_ip
    for service in sorted(services, key=lambda s: s.key):
        if service.headless:
            found[service.key] = None
        elif service.key not in found:
            number = _free(base + 2, size - 3, names.fnv1a(service.key.encode()), taken.keys() | reserved.keys())
            taken[number] = service.key
            found[service.key] = str(ipaddress.IPv4Address(number))
    return found


def _allocate_node_ports(services):
    low, high = NODE_PORTS
    taken, found = {}, {}
    for service in services:
        for index, port in enumerate(service.ports):
            if port.node_port is not None:
                if port.node_port in taken:
                    raise SpecError(service.subject, 'spec.ports[%d].nodePort: %d is also a node port of Service %s'
                                    % (index, port.node_port, taken[port.node_port]))
                taken[port.node_port] = service.key
                found[service.key, index] = port.node_port
    for service in sorted(services, key=lambda s: s.key):
        if service.type not in EXTERNAL_TYPES:
            continue
        for index, port in enumerate(service.ports):
            if (service.key, index) not in found:
                seed = names.fnv1a(('%s/%s' % (service.key, port.key)).encode())
                number = _free(low, high - low + 1, seed, taken.keys())
                taken[number] = service.key
                found[service.key, index] = number
    return found


def _free(first, count, seed, taken):
    for step in range(count):
        number = first + (seed + step) % count
        if number not in taken:
            return number
    raise SpecError('services', 'no free address or port left in its range')


def plan(services):
    """What every node needs of each Service, as JSON-able dicts, with its
    addresses allocated."""
    cluster_ips, node_ports = allocate(services)
    return [{'namespace': s.namespace, 'name': s.name, 'type': s.type, 'cluster_ip': cluster_ips[s.key],
             'selector': s.selector,
             'ports': [{'name': p.name, 'protocol': p.protocol, 'port': p.port, 'target_port': p.target_port,
                        'node_port': node_ports.get((s.key, i))} for i, p in enumerate(s.ports)],
             'affinity_timeout': s.affinity_timeout, 'external_local': s.external_local,
             'internal_local': s.internal_local, 'publish_not_ready': s.publish_not_ready,
             'external_name': s.external_name}
            for s in sorted(services, key=lambda s: s.key)]
