"""The NetworkPolicy cases the unit tests hold the compiler against: the upstream
netpol e2e model (namespaces x, y, z; pods a, b, c serving 80 and 81 over TCP,
UDP and SCTP, on two nodes), policies built on it, the reachability each
allows as derived by hand, and a small nft interpreter to run compiled tables."""
import ipaddress

from ansible.module_utils.podnet.policy.netpol import (
    Cluster,
    parse_policy,
)
from ansible.module_utils.podnet.policy.netpol_nft import BASE_CHAIN, compile_node

NAMESPACES = {n: {'ns': n, 'kubernetes.io/metadata.name': n} for n in 'xyz'}
NODE_IPS = {'node1': ['10.42.1.1', '192.168.50.11'], 'node2': ['10.42.2.1', '192.168.50.12']}
EXTERNAL = '192.0.2.7'
PROBES = [(80, 'TCP'), (81, 'TCP'), (80, 'UDP'), (81, 'UDP'), (80, 'SCTP'), (81, 'SCTP'),
          (None, 'ICMP')]


def make_pod(namespace, name, index):
    node = 'node%d' % (index % 2 + 1)
    return {'namespace': namespace, 'name': name, 'labels': {'pod': name}, 'node': node,
            'ip': '10.42.%d.%d' % (index % 2 + 1, 10 + index), 'veth': 'veth%08x' % (0xa0 + index),
            'ports': [{'name': 'serve-%d-%s' % (port, proto.lower()), 'containerPort': port,
                       'protocol': proto} for port in (80, 81) for proto in ('TCP', 'UDP', 'SCTP')]}


PODS = {'%s/%s' % (ns, p): make_pod(ns, p, i)
        for i, (ns, p) in enumerate((ns, p) for ns in 'xyz' for p in 'abc')}
CLUSTER = Cluster(list(PODS.values()), NAMESPACES, NODE_IPS)


def policy(key, spec):
    namespace, name = key.split('/')
    return parse_policy({'metadata': {'namespace': namespace, 'name': name}, 'spec': spec})


def labels(**kv):
    return {'matchLabels': kv}


ALL = {}
DENY_INGRESS_X = policy('x/deny-ingress', {'podSelector': ALL})
DENY_EGRESS_X = policy('x/deny-egress', {'podSelector': ALL, 'policyTypes': ['Egress']})
DENY_ALL_X = policy('x/deny-all', {'podSelector': ALL, 'policyTypes': ['Ingress', 'Egress']})


def to_a(*rules, key='x/allow'):
    return policy(key, {'podSelector': labels(pod='a'), 'ingress': list(rules)})


def from_a(*rules, key='x/allow-egress'):
    return policy(key, {'podSelector': labels(pod='a'), 'policyTypes': ['Egress'],
                        'egress': list(rules)})


# -- expectations ------------------------------------------------------------------
def _covers(pattern, key):
    namespace, _, name = pattern.partition('/')
    pod_ns, pod_name = key.split('/')
    return namespace in ('*', pod_ns) and name in ('', '*', pod_name)


class Reachability:
    """Expected truth table over the model's pods, like the e2e Reachability:
    start from a default, then set what patterns (x/a, x/*, */a, *) cover."""

    def __init__(self, default=True):
        self.table = {(s, d): default for s in PODS for d in PODS}

    def expect(self, src, dst, value):
        for s, d in self.table:
            if _covers(src, s) and _covers(dst, d):
                self.table[s, d] = value
        return self

    def loopback(self):
        for key in PODS:
            self.table[key, key] = True
        return self


def mismatches(expected, observe):
    return sorted('%s -> %s: expected %s' % (s, d, 'allowed' if v else 'denied')
                  for (s, d), v in expected.items() if observe(s, d) != v)


# (name, policies, probe, expected) -- probe is (port, protocol)
CASES = [
    ('no policies', [], (80, 'TCP'), Reachability()),
    ('default deny ingress', [DENY_INGRESS_X], (80, 'TCP'),
     Reachability().expect('*', 'x/*', False).loopback()),
    ('default deny egress', [DENY_EGRESS_X], (80, 'TCP'),
     Reachability().expect('x/*', '*', False).loopback()),
    ('deny all', [DENY_ALL_X], (81, 'UDP'),
     Reachability().expect('x/*', '*', False).expect('*', 'x/*', False).loopback()),
    ('allow all ingress beside a default deny', [DENY_INGRESS_X, policy(
        'x/allow-all', {'podSelector': ALL, 'ingress': [{}]})], (80, 'TCP'), Reachability()),
    ('allow all egress beside a default deny', [DENY_EGRESS_X, policy(
        'x/allow-all', {'podSelector': ALL, 'policyTypes': ['Egress'], 'egress': [{}]})],
     (80, 'SCTP'), Reachability()),
    ('pod selector: same namespace only', [to_a({'from': [{'podSelector': labels(pod='b')}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True).loopback()),
    ('namespace selector', [to_a({'from': [{'namespaceSelector': labels(ns='y')}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True).loopback()),
    ('pod AND namespace in one peer', [to_a({'from': [
        {'namespaceSelector': labels(ns='y'), 'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/b', 'x/a', True).loopback()),
    ('pod OR namespace in two peers', [to_a({'from': [
        {'namespaceSelector': labels(ns='y')}, {'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True)
     .expect('x/b', 'x/a', True).loopback()),
    ('any pod of any namespace', [to_a({'from': [
        {'namespaceSelector': ALL, 'podSelector': labels(pod='c')}]})], (81, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('*/c', 'x/a', True).loopback()),
    ('namespace selector NotIn', [to_a({'from': [{'namespaceSelector': {'matchExpressions': [
        {'key': 'ns', 'operator': 'NotIn', 'values': ['x']}]}}]})], (80, 'TCP'),
     Reachability().expect('x/*', 'x/a', False).loopback()),
    ('pod selector In', [to_a({'from': [{'podSelector': {'matchExpressions': [
        {'key': 'pod', 'operator': 'In', 'values': ['b', 'c']}]}}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True)
     .expect('x/c', 'x/a', True).loopback()),
    ('pod selector Exists/DoesNotExist', [policy('x/p', {
        'podSelector': {'matchExpressions': [{'key': 'pod', 'operator': 'Exists'}]},
        'ingress': [{'from': [{'namespaceSelector': {'matchExpressions': [
            {'key': 'team', 'operator': 'DoesNotExist'}]}, 'podSelector': labels(pod='a')}]}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/*', False).expect('*/a', 'x/*', True).loopback()),
    ('ports: only 80/TCP allowed, probe 81', [to_a({'ports': [{'port': 80}]})], (81, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('ports: only 80/TCP allowed, probe 80', [to_a({'ports': [{'port': 80}]})], (80, 'TCP'),
     Reachability()),
    ('UDP only: TCP refused', [to_a({'ports': [{'protocol': 'UDP', 'port': 80}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('SCTP is not TCP', [to_a({'ports': [{'protocol': 'SCTP', 'port': 80}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).loopback()),
    ('SCTP is not TCP, probe SCTP', [to_a({'ports': [{'protocol': 'SCTP', 'port': 80}]})],
     (80, 'SCTP'), Reachability()),
    ('any port on one protocol', [to_a({'ports': [{'protocol': 'UDP'}]})], (81, 'UDP'),
     Reachability()),
    ('ingress named port', [to_a({'ports': [{'port': 'serve-81-tcp'}]})], (81, 'TCP'),
     Reachability()),
    ('ingress named port, other port', [to_a({'ports': [{'port': 'serve-81-tcp'}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('named port with the wrong protocol', [to_a({'ports': [{'port': 'serve-81-tcp',
                                                             'protocol': 'UDP'}]})],
     (81, 'UDP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('ingress named port from a namespace', [to_a({
        'from': [{'namespaceSelector': labels(ns='y')}], 'ports': [{'port': 'serve-80-udp',
                                                                   'protocol': 'UDP'}]})],
     (80, 'UDP'), Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True).loopback()),
    ('endPort range 80-81', [to_a({'ports': [{'port': 80, 'endPort': 81}]})], (81, 'TCP'),
     Reachability()),
    ('endPort range 81-82 excludes 80', [to_a({'ports': [{'port': 81, 'endPort': 82}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False).loopback()),
    ('egress to specific pods', [from_a({'to': [
        {'namespaceSelector': labels(ns='y'), 'podSelector': labels(pod='b')}]})], (80, 'TCP'),
     Reachability().expect('x/a', '*', False).expect('x/a', 'y/b', True).loopback()),
    ('egress named port', [from_a({'ports': [{'port': 'serve-81-udp', 'protocol': 'UDP'}]})],
     (81, 'UDP'), Reachability()),
    ('egress named port, other port', [from_a({'ports': [{'port': 'serve-81-udp',
                                                          'protocol': 'UDP'}]})],
     (80, 'UDP'), Reachability().expect('x/a', '*', False).loopback()),
    ('egress named port to some pods', [from_a({'to': [{'podSelector': labels(pod='b')}],
                                                'ports': [{'port': 'serve-80-tcp'}]})],
     (80, 'TCP'), Reachability().expect('x/a', '*', False).expect('x/a', 'x/b', True).loopback()),
    ('egress ipBlock with except', [from_a({'to': [{'ipBlock': {
        'cidr': '10.42.0.0/16', 'except': [PODS['y/b']['ip'] + '/32']}}]})], (80, 'TCP'),
     Reachability().expect('x/a', 'y/b', False)),
    ('ingress ipBlock: node1 pods', [to_a({'from': [{'ipBlock': {'cidr': '10.42.1.0/24'}}]})],
     (80, 'TCP'), Reachability().expect('*', 'x/a', False)
     .expect('x/a', 'x/a', True).expect('x/c', 'x/a', True).expect('y/b', 'x/a', True)
     .expect('z/a', 'x/a', True).expect('z/c', 'x/a', True)),
    ('an IP in both cidr and except is allowed by a second policy', [
        from_a({'to': [{'ipBlock': {'cidr': '10.42.0.0/16',
                                    'except': [PODS['y/b']['ip'] + '/32']}}]}),
        from_a({'to': [{'ipBlock': {'cidr': PODS['y/b']['ip'] + '/32'}}]}, key='x/allow-yb')],
     (80, 'TCP'), Reachability()),
    ('IPv6 ipBlock never matches IPv4 pods', [from_a({'to': [{'ipBlock': {
        'cidr': '::/0'}}]})], (80, 'TCP'), Reachability().expect('x/a', '*', False).loopback()),
    ('multiple policies on one pod add up', [
        to_a({'from': [{'podSelector': labels(pod='b')}]}),
        to_a({'from': [{'namespaceSelector': labels(ns='z'), 'podSelector': labels(pod='c')}]},
             key='x/allow-zc')], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('x/b', 'x/a', True)
     .expect('z/c', 'x/a', True).loopback()),
    ('client egress deny wins over server ingress allow', [DENY_EGRESS_X, policy(
        'y/allow-all', {'podSelector': ALL, 'ingress': [{}]})], (80, 'TCP'),
     Reachability().expect('x/*', '*', False).loopback()),
    ('ingress and egress together', [policy('x/both', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Ingress', 'Egress'],
        'ingress': [{'from': [{'namespaceSelector': labels(ns='y')}]}],
        'egress': [{'to': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability().expect('*', 'x/a', False).expect('y/*', 'x/a', True)
     .expect('x/a', '*', False).expect('x/a', 'z/*', True).loopback()),
    ('policyTypes Ingress ignores egress rules', [policy('x/ingress-only', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Ingress'], 'ingress': [{}],
        'egress': [{'to': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability()),
    ('policyTypes Egress ignores ingress rules', [policy('x/egress-only', {
        'podSelector': labels(pod='a'), 'policyTypes': ['Egress'],
        'ingress': [{'from': [{'namespaceSelector': labels(ns='z')}]}]})], (80, 'TCP'),
     Reachability().expect('x/a', '*', False).loopback()),
    ('a policy selects only pods of its own namespace', [policy(
        'y/deny', {'podSelector': labels(pod='a')})], (80, 'TCP'),
     Reachability().expect('*', 'y/a', False).loopback()),
]


# -- an nft interpreter, enough for what compile_node writes ----------------------
def _value(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text


def _contains(right, value):
    if isinstance(right, dict) and 'set' in right:
        return any(_contains(e, value) for e in right['set'])
    if isinstance(right, dict) and 'prefix' in right:
        prefix = right['prefix']
        return value in ipaddress.ip_network('%s/%d' % (prefix['addr'], prefix['len']))
    if isinstance(right, dict) and 'range' in right:
        low, high = (_value(v) if isinstance(v, str) else v for v in right['range'])
        return low <= value <= high
    assert isinstance(right, (str, int)), right
    return (_value(right) if isinstance(right, str) else right) == value


def _left(left, packet):
    """The packet's value for an expression; None when it has no such header."""
    if '&' in left:  # meta mark & MASK (the hairpin mark): a packet's mark is 0 unless it says
        (meta, mask), = [left['&']]
        assert meta == {'meta': {'key': 'mark'}}, left
        return packet.get('mark', 0) & mask
    if 'ct' in left:
        assert left == {'ct': {'key': 'state'}}
        return packet['ct']
    if 'meta' in left:
        assert left == {'meta': {'key': 'l4proto'}}
        return packet['l4proto']
    payload = left['payload']
    if payload['protocol'] == 'ip':
        assert payload['field'] in ('saddr', 'daddr')
        return ipaddress.ip_address(packet[payload['field']])
    assert payload['field'] == 'dport' and payload['protocol'] in ('tcp', 'udp', 'sctp')
    return packet['dport'] if packet['l4proto'] == payload['protocol'] else None


def _matches(match, packet):
    value = _left(match['left'], packet)
    if match['op'] == 'in':
        return value in match['right']
    assert match['op'] == '=='
    return value is not None and _contains(match['right'], value)


def _run_rule(table, expr, packet):
    for statement in expr:
        if 'match' in statement:
            if not _matches(statement['match'], packet):
                return None
            continue
        if 'vmap' in statement:
            value = _left(statement['vmap']['key'], packet)
            hits = [v for k, v in statement['vmap']['data']['set'] if _contains(k, value)]
            if not hits:
                return None
            statement = hits[0]
        [(verdict, target)] = statement.items()
        if verdict == 'jump':
            return _run_chain(table, target['target'], packet)
        assert verdict in ('accept', 'drop', 'return'), statement
        return verdict
    raise AssertionError('rule without verdict: %s' % expr)


def _run_chain(table, chain, packet):
    """accept or drop, or None when the chain returns to its caller."""
    for expr in table[chain]:
        verdict = _run_rule(table, expr, packet)
        if verdict in ('accept', 'drop'):
            return verdict
        if verdict == 'return':
            return None
    return None


def forward(compiled, packet):
    chains, rules = compiled
    table = {c['name']: [] for c in chains}
    for chain, expr in rules:
        table[chain].append(expr)
    return _run_chain(table, 'forward', packet) or BASE_CHAIN['policy']


def compile_all(policies, pods=PODS):
    return {node: compile_node([p for p in pods.values() if p['node'] == node],
                               list(pods.values()), NAMESPACES, policies, ips)
            for node, ips in NODE_IPS.items()}


def delivered(tables, src, dst, probe, ct='new'):
    """Whether the compiled tables let a packet from src to dst through:
    the forward hook of the source pod's node, then of the destination's.
    A pod's own node talks to it through input/output, never forward."""
    if src is dst:
        return True  # loopback inside the pod
    if isinstance(src, str) and src in NODE_IPS.get(dst.get('node'), ()) or \
            isinstance(dst, str) and dst in NODE_IPS.get(src.get('node'), ()):
        return True
    port, protocol = probe
    packet = {'saddr': src['ip'] if isinstance(src, dict) else src,
              'daddr': dst['ip'] if isinstance(dst, dict) else dst,
              'l4proto': protocol.lower(), 'dport': port, 'ct': ct}
    nodes = []
    for end in (src, dst):
        if isinstance(end, dict) and end['node'] not in nodes:
            nodes.append(end['node'])
    return all(forward(tables[node], packet) == 'accept' for node in nodes)


def endpoints():
    outside = [EXTERNAL, NODE_IPS['node1'][1], NODE_IPS['node2'][0]]
    pods = list(PODS.values())
    return [(s, d) for s in pods + outside for d in pods] + [(s, d) for s in pods for d in outside]


# -- structure ------------------------------------------------------------------------
def all_rules(tables):
    return [expr for _, rules in tables.values() for _, expr in rules]


def big_cluster(per_namespace):
    pods = {}
    for n, namespace in enumerate('xyz'):
        for i in range(per_namespace):
            pod = make_pod(namespace, 'p%d' % i, n * per_namespace + i)
            pod['labels'] = {'pod': 'p%d' % i, 'role': 'client' if i % 2 else 'server'}
            pods['%s/p%d' % (namespace, i)] = pod
    return pods
