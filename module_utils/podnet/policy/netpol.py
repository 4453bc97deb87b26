"""NetworkPolicy (networking.k8s.io/v1): API objects, validation as the API
server does it, label selectors, and decide(), the semantics stated directly.

parse_policy() turns a raw manifest dict into a Policy or raises SpecError
naming the field (`spec.ingress[0].ports[1].endPort: ...`). decide() says
whether one new connection may pass and why (the policy and rule that allow
it, or the policies that isolate a pod with no rule that allows);
netpol_nft compiles the same semantics into nftables, and the tests hold
the two against each other. Pods are dicts
{namespace, name, labels, ip, ports: [{name, containerPort, protocol}], node?}.
"""
import ipaddress
import re
from collections import namedtuple
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core import k8s

INGRESS, EGRESS = 'Ingress', 'Egress'
POLICY_TYPES = (INGRESS, EGRESS)
OPERATORS = ('In', 'NotIn', 'Exists', 'DoesNotExist')
NAME_LABEL = k8s.NAME_LABEL
CIDR_TEXT = re.compile(r'^[0-9A-Fa-f.:]+/(0|[1-9][0-9]{0,2})$')
FIELDS = {'spec': ('podSelector', 'policyTypes', 'ingress', 'egress'),
          'ingress': ('from', 'ports'), 'egress': ('to', 'ports'),
          'peer': ('podSelector', 'namespaceSelector', 'ipBlock'),
          'port': ('protocol', 'port', 'endPort'), 'ipBlock': ('cidr', 'except'),
          'selector': ('matchLabels', 'matchExpressions'),
          'requirement': ('key', 'operator', 'values')}


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # one of OPERATORS
    values: tuple = ()  # non-empty for In/NotIn, empty for Exists/DoesNotExist


@dataclass(frozen=True)
class Selector:
    """A label selector; the empty one selects everything."""
    match_labels: tuple = ()  # ((key, value), ...) sorted by key
    match_expressions: tuple = ()  # (Requirement, ...)


@dataclass(frozen=True)
class IPBlock:
    cidr: object  # ipaddress network, host bits cleared
    excepts: tuple = ()  # networks strictly inside cidr

    def contains(self, ip):
        address = ipaddress.ip_address(ip)
        return address in self.cidr and not any(address in e for e in self.excepts)


@dataclass(frozen=True)
class Peer:
    """pod_selector and/or namespace_selector (both: AND), or ip_block alone."""
    pod_selector: object = None  # Selector or None
    namespace_selector: object = None  # Selector or None
    ip_block: object = None  # IPBlock or None


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = 'TCP'
    port: object = None  # int, a named port (str), or None for every port
    end_port: object = None  # int >= port, only with a numeric port


@dataclass(frozen=True)
class Rule:
    peers: tuple = ()  # (Peer, ...); () matches every source or destination
    ports: tuple = ()  # (PolicyPort, ...); () matches every port and protocol


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    pod_selector: Selector
    policy_types: tuple  # subset of POLICY_TYPES, in that order
    ingress: tuple = ()  # (Rule, ...), used only when Ingress is in policy_types
    egress: tuple = ()  # (Rule, ...), used only when Egress is in policy_types

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)

    def rules(self, direction):
        return self.ingress if direction == INGRESS else self.egress


@dataclass
class Cluster:
    """What decide() needs besides the policies."""
    pods: list  # every pod dict of the cluster
    namespaces: dict  # name -> labels
    node_ips: dict = field(default_factory=dict)  # node name -> its IPv4 addresses


# -- validation ---------------------------------------------------------------
def _mapping(raw, at, subject, kind):
    """raw as a dict ({} for None) holding only the fields of `kind`."""
    return k8s.fields(raw, at, subject, FIELDS[kind])


def _requirement(raw, at, subject):
    raw = _mapping(raw, at, subject, 'requirement')
    operator, values = raw.get('operator'), k8s.items(raw.get('values'), at + '.values', subject)
    if operator not in OPERATORS:
        raise SpecError(subject, '%s.operator: %r is not a valid selector operator (%s)'
                        % (at, operator, ', '.join(OPERATORS)))
    if operator in ('In', 'NotIn') and not values:
        raise SpecError(subject, '%s.values: required, must be non-empty when operator is '
                        'In or NotIn' % at)
    if operator in ('Exists', 'DoesNotExist') and values:
        raise SpecError(subject, '%s.values: may not be specified when operator is Exists '
                        'or DoesNotExist' % at)
    key = k8s.label_key(raw.get('key'), at + '.key', subject)
    values = [k8s.label_value(v, '%s.values[%d]' % (at, i), subject)
              for i, v in enumerate(values)]
    return Requirement(key, operator, tuple(values))


def parse_selector(raw, at, subject):
    raw = _mapping(raw, at, subject, 'selector')
    labels = k8s.labels(raw.get('matchLabels'), at + '.matchLabels', subject)
    expressions = k8s.items(raw.get('matchExpressions'), at + '.matchExpressions', subject)
    return Selector(tuple(sorted(labels.items())), tuple(
        _requirement(r, '%s.matchExpressions[%d]' % (at, i), subject)
        for i, r in enumerate(expressions)))


def _network(text, at, subject):
    try:
        if not isinstance(text, str) or '%' in text or not CIDR_TEXT.match(text):
            raise ValueError(text)
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise SpecError(subject, '%s: %r is not a valid CIDR (address/prefix length, '
                        'e.g. 10.0.0.0/16)' % (at, text)) from None


def _ip_block(raw, at, subject):
    raw = _mapping(raw, at, subject, 'ipBlock')
    if raw.get('cidr') in (None, ''):
        raise SpecError(subject, '%s.cidr: required' % at)
    cidr = _network(raw['cidr'], at + '.cidr', subject)
    excepts = []
    for i, text in enumerate(k8s.items(raw.get('except'), at + '.except', subject)):
        where = '%s.except[%d]' % (at, i)
        net = _network(text, where, subject)
        if net.version != cidr.version or not net.subnet_of(cidr) \
                or net.prefixlen <= cidr.prefixlen:
            raise SpecError(subject, '%s: %r must be a strict subset of cidr %s'
                            % (where, text, raw['cidr']))
        excepts.append(net)
    return IPBlock(cidr, tuple(excepts))


def _peer(raw, at, subject):
    raw = _mapping(raw, at, subject, 'peer')
    given = [k for k in FIELDS['peer'] if raw.get(k) is not None]
    if not given:
        raise SpecError(subject, '%s: must specify a peer (podSelector, namespaceSelector '
                        'or ipBlock)' % at)
    if 'ipBlock' in given and len(given) > 1:
        raise SpecError(subject, '%s: may not specify both ipBlock and another peer (%s)'
                        % (at, ', '.join(given)))
    if 'ipBlock' in given:
        return Peer(ip_block=_ip_block(raw['ipBlock'], at + '.ipBlock', subject))
    return Peer(*(parse_selector(raw[k], '%s.%s' % (at, k), subject) if k in given else None
                  for k in ('podSelector', 'namespaceSelector')))


def _port(raw, at, subject):
    raw = _mapping(raw, at, subject, 'port')
    protocol = k8s.protocol(raw.get('protocol'), at + '.protocol', subject)
    port, end = raw.get('port'), raw.get('endPort')
    if port is None:
        if end is not None:
            raise SpecError(subject, '%s.endPort: may not be specified when port is not '
                            'specified' % at)
        return PolicyPort(protocol)
    if isinstance(port, str):
        if end is not None:
            raise SpecError(subject, '%s.endPort: may not be specified when port is a named '
                            'port (%r)' % (at, port))
        return PolicyPort(protocol, k8s.port_name(port, at + '.port', subject))
    k8s.port_number(port, at + '.port', subject)
    if end is not None:
        k8s.port_number(end, at + '.endPort', subject)
        if end < port:
            raise SpecError(subject, '%s.endPort: must be >= port (%d)' % (at, port))
    return PolicyPort(protocol, port, end)


def _rules(spec, direction, subject):
    kind = direction.lower()
    peers_key = 'from' if direction == INGRESS else 'to'
    rules = []
    for i, raw in enumerate(k8s.items(spec.get(kind), 'spec.' + kind, subject)):
        at = 'spec.%s[%d]' % (kind, i)
        raw = _mapping(raw, at, subject, kind)
        ports = k8s.items(raw.get('ports'), at + '.ports', subject)
        peers = k8s.items(raw.get(peers_key), '%s.%s' % (at, peers_key), subject)
        rules.append(Rule(
            tuple(_peer(p, '%s.%s[%d]' % (at, peers_key, j), subject) for j, p in enumerate(peers)),
            tuple(_port(p, '%s.ports[%d]' % (at, j), subject) for j, p in enumerate(ports))))
    return tuple(rules)


def _policy_types(spec, subject):
    """Given types in canonical order; by default Ingress, plus Egress when
    spec.egress has rules (the API server defaults on len(egress) != 0)."""
    given = k8s.items(spec.get('policyTypes'), 'spec.policyTypes', subject)
    if not given:
        return (INGRESS, EGRESS) if spec.get('egress') else (INGRESS,)
    if len(given) > 2:
        raise SpecError(subject, 'spec.policyTypes: may not specify more than two policyTypes')
    for i, kind in enumerate(given):
        if kind not in POLICY_TYPES:
            raise SpecError(subject, 'spec.policyTypes[%d]: %r is not supported (%s)'
                            % (i, kind, ', '.join(POLICY_TYPES)))
    return tuple(k for k in POLICY_TYPES if k in given)


def parse_policy(raw, subject=None):
    """A validated, defaulted Policy from a raw NetworkPolicy dict; SpecError
    with the field path otherwise, its subject the one given (manifests
    passes `file: NetworkPolicy ns/name`) or `NetworkPolicy ns/name`."""
    meta = raw.get('metadata') if isinstance(raw, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    namespace, name = meta.get('namespace') or k8s.DEFAULT_NAMESPACE, meta.get('name')
    subject = subject or 'NetworkPolicy %s/%s' % (namespace, name)
    if not isinstance(raw, dict):
        raise SpecError('NetworkPolicy', 'must be a mapping')
    if not isinstance(name, str) or not name:
        raise SpecError('NetworkPolicy', 'metadata.name: required')
    spec = _mapping(raw.get('spec'), 'spec', subject, 'spec')
    selector = parse_selector(spec.get('podSelector'), 'spec.podSelector', subject)
    ingress, egress = _rules(spec, INGRESS, subject), _rules(spec, EGRESS, subject)
    return Policy(namespace, name, selector, _policy_types(spec, subject), ingress, egress)


# -- semantics ----------------------------------------------------------------
MATCHES = {'In': lambda present, value, values: present and value in values,
           'NotIn': lambda present, value, values: not present or value not in values,
           'Exists': lambda present, value, values: present,
           'DoesNotExist': lambda present, value, values: not present}


def selects(selector, labels):
    """Whether a label selector matches these labels (empty selector: all)."""
    return all(labels.get(k) == v for k, v in selector.match_labels) and all(
        MATCHES[r.operator](r.key in labels, labels.get(r.key), r.values)
        for r in selector.match_expressions)


def namespace_labels(namespaces, name):
    """A namespace's labels, always with kubernetes.io/metadata.name."""
    return {**namespaces.get(name, {}), NAME_LABEL: name}


def isolating(pod, direction, policies):
    """The policies that isolate a pod for Ingress or Egress, in key order."""
    return sorted((p for p in policies if direction in p.policy_types
                   and p.namespace == pod['namespace'] and selects(p.pod_selector, pod['labels'])),
                  key=lambda p: (p.namespace, p.name))


def peer_matches(peer, policy_namespace, endpoint, namespaces):
    """Whether a peer of a policy in policy_namespace covers endpoint: a pod
    dict, or an IP address (a node or something outside the cluster)."""
    if peer.ip_block is not None:
        ip = endpoint['ip'] if isinstance(endpoint, dict) else endpoint
        return peer.ip_block.contains(ip)
    if not isinstance(endpoint, dict):
        return False
    if peer.namespace_selector is None:
        in_namespace = endpoint['namespace'] == policy_namespace
    else:
        in_namespace = selects(peer.namespace_selector,
                               namespace_labels(namespaces, endpoint['namespace']))
    return in_namespace and (peer.pod_selector is None
                             or selects(peer.pod_selector, endpoint['labels']))


def named_port_numbers(pod, name, protocol):
    """The container port numbers a named port stands for on a pod."""
    if not isinstance(pod, dict):
        return set()
    return {p['containerPort'] for p in pod.get('ports') or ()
            if p.get('name') == name and p.get('protocol', 'TCP') == protocol}


_Connection = namedtuple('_Connection', 'src dst port protocol')  # port None: no ports


def _port_allows(policy_port, conn):
    if policy_port.protocol != conn.protocol:
        return False
    if policy_port.port is None:
        return True
    if isinstance(policy_port.port, str):
        return conn.port in named_port_numbers(conn.dst, policy_port.port, conn.protocol)
    return conn.port is not None and \
        policy_port.port <= conn.port <= (policy_port.end_port or policy_port.port)


# policies: the one that allowed (rule: its index), or all that isolate when denied.
Side = namedtuple('Side', 'direction allowed reason policies rule')
Decision = namedtuple('Decision', 'allowed reason egress ingress')  # egress/ingress: Side or None


def _name(endpoint):
    return '%(namespace)s/%(name)s' % endpoint if isinstance(endpoint, dict) else endpoint


def _side(conn, direction, cluster, policies):
    """The egress of conn.src, or the ingress of conn.dst: a Side saying
    whether it allows the connection and why, naming the policy and the
    rule index that allowed it, or every policy that isolates the pod."""
    pod, other = (conn.src, conn.dst) if direction == EGRESS else (conn.dst, conn.src)
    what = '%s of %s' % (direction.lower(), _name(pod))
    if not isinstance(pod, dict):
        return Side(direction, True, '%s: not a pod, no policy applies' % what, (), None)
    other_ip = other['ip'] if isinstance(other, dict) else other
    if other_ip in cluster.node_ips.get(pod.get('node'), ()):
        return Side(direction, True, '%s: %s is its own node, always allowed' % (what, other_ip), (), None)
    selecting = isolating(pod, direction, policies)
    if not selecting:
        return Side(direction, True, '%s: not isolated (no policy selects it for %s)' % (
            what, direction), (), None)
    for policy in selecting:
        for index, rule in enumerate(policy.rules(direction)):
            if (not rule.peers or any(peer_matches(peer, policy.namespace, other, cluster.namespaces)
                                      for peer in rule.peers)) \
                    and (not rule.ports or any(_port_allows(p, conn) for p in rule.ports)):
                return Side(direction, True, '%s: allowed by %s %s rule %d' % (
                    what, policy.key, direction.lower(), index), (policy.key,), index)
    keys = tuple(p.key for p in selecting)
    return Side(direction, False, '%s: isolated by %s, no rule allows' % (what, ', '.join(keys)),
                keys, None)


def _endpoint(value, cluster):
    """A pod dict as is; an IP as its pod if it has one, else as the IP."""
    return value if isinstance(value, dict) else next(
        (p for p in cluster.pods if p['ip'] == value), value)


def _same(a, b):
    return _identity(a) == _identity(b)


def _identity(endpoint):
    """A pod by namespace and name; anything else (an address) as it is."""
    return (endpoint['namespace'], endpoint['name']) if isinstance(endpoint, dict) else endpoint


def decide(src, dst, port, protocol, cluster, policies):
    """Whether Kubernetes lets a new connection from src to dst:port/protocol
    through, and why: src's egress policies and dst's ingress policies must
    both allow it. src and dst are pod dicts or IPs (an IP of a pod counts
    as the pod); a pod always reaches itself (loopback) and its own node's
    addresses, and is always reached by them. Both sides are judged, so a
    denial names every side that denies."""
    conn = _Connection(_endpoint(src, cluster), _endpoint(dst, cluster), port, protocol)
    if _same(conn.src, conn.dst):
        return Decision(True, '%s reaches itself over loopback, always allowed' % _name(conn.src),
                        None, None)
    egress, ingress = (_side(conn, d, cluster, policies) for d in (EGRESS, INGRESS))
    denying = [side.reason for side in (egress, ingress) if not side.allowed]
    return Decision(not denying, '; '.join(denying or (egress.reason, ingress.reason)),
                    egress, ingress)


def allowed(src, dst, port, protocol, cluster, policies):
    """decide()'s yes or no."""
    return decide(src, dst, port, protocol, cluster, policies).allowed
