"""NetworkPolicy validation and defaulting: every accepted form, and every
refusal with the field path the API server would name."""
import ipaddress

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.policy.netpol import (
    IPBlock, Peer, Policy, PolicyPort, Requirement, Rule, Selector, parse_policy)


def raw(spec, name='p', namespace='x'):
    meta = {'name': name}
    if namespace is not None:
        meta['namespace'] = namespace
    return {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
            'metadata': meta, 'spec': spec}


def ingress(*rules, **spec):
    return raw(dict(spec, podSelector={}, ingress=list(rules)))


def refusal(policy):
    with pytest.raises(SpecError) as info:
        parse_policy(policy)
    return str(info.value)


# -- accepted forms -------------------------------------------------------------
def test_default_deny_ingress_selects_every_pod_and_has_no_rules():
    assert parse_policy(raw({'podSelector': {}}, name='deny-all')) == Policy(
        'x', 'deny-all', Selector(), ('Ingress',), (), ())


def test_missing_spec_and_pod_selector_mean_every_pod_of_the_namespace():
    assert parse_policy(raw(None)).pod_selector == Selector()
    assert parse_policy(raw({})).pod_selector == Selector()


def test_namespace_defaults_to_default_and_key_names_it():
    policy = parse_policy(raw({}, namespace=None))
    assert (policy.namespace, policy.key) == ('default', 'default/p')


@pytest.mark.parametrize('spec, types', [
    ({}, ('Ingress',)),
    ({'ingress': [{}]}, ('Ingress',)),
    ({'egress': [{}]}, ('Ingress', 'Egress')),
    ({'egress': []}, ('Ingress',)),  # the API server defaults on len(egress) != 0
    ({'policyTypes': ['Egress']}, ('Egress',)),
    ({'policyTypes': ['Egress', 'Ingress']}, ('Ingress', 'Egress')),
    ({'policyTypes': ['Ingress', 'Ingress']}, ('Ingress',)),
    ({'policyTypes': [], 'egress': [{}]}, ('Ingress', 'Egress')),
    ({'policyTypes': ['Egress'], 'ingress': [{}]}, ('Egress',)),
])
def test_policy_types_default_and_explicit(spec, types):
    assert parse_policy(raw(dict(spec, podSelector={}))).policy_types == types


def test_match_labels_and_every_operator():
    selector = {'matchLabels': {'pod': 'a', 'app.kubernetes.io/name': 'web'},
                'matchExpressions': [
                    {'key': 'tier', 'operator': 'In', 'values': ['front', 'back']},
                    {'key': 'tier', 'operator': 'NotIn', 'values': ['db']},
                    {'key': 'team', 'operator': 'Exists'},
                    {'key': 'legacy', 'operator': 'DoesNotExist', 'values': []}]}
    policy = parse_policy(raw({'podSelector': selector}))
    assert policy.pod_selector == Selector(
        (('app.kubernetes.io/name', 'web'), ('pod', 'a')),
        (Requirement('tier', 'In', ('front', 'back')), Requirement('tier', 'NotIn', ('db',)),
         Requirement('team', 'Exists'), Requirement('legacy', 'DoesNotExist')))


def test_empty_rule_allows_everything_and_null_rule_is_empty():
    assert parse_policy(ingress({})).ingress == (Rule(),)
    assert parse_policy(ingress(None)).ingress == (Rule(),)


def test_empty_or_missing_peers_and_ports_mean_all():
    rule = {'from': [], 'ports': []}
    assert parse_policy(ingress(rule)).ingress == (Rule(),)
    assert parse_policy(raw({'egress': [{'to': None}]})).egress == (Rule(),)


def test_peer_forms():
    rule = {'from': [{'podSelector': {'matchLabels': {'pod': 'b'}}},
                     {'namespaceSelector': {}},
                     {'podSelector': {}, 'namespaceSelector': {'matchLabels': {'ns': 'y'}}},
                     {'ipBlock': {'cidr': '10.0.0.0/8', 'except': ['10.1.0.0/16', '10.2.3.4/32']}},
                     {'ipBlock': {'cidr': '2001:db8::/32'}},
                     {'ipBlock': {'cidr': '192.168.1.77/24'}}]}
    peers = parse_policy(ingress(rule)).ingress[0].peers
    net = ipaddress.ip_network
    assert peers == (
        Peer(Selector((('pod', 'b'),))),
        Peer(namespace_selector=Selector()),
        Peer(Selector(), Selector((('ns', 'y'),))),
        Peer(ip_block=IPBlock(net('10.0.0.0/8'), (net('10.1.0.0/16'), net('10.2.3.4/32')))),
        Peer(ip_block=IPBlock(net('2001:db8::/32'))),
        Peer(ip_block=IPBlock(net('192.168.1.0/24'))))  # host bits cleared, as ParseCIDR does


def test_port_forms():
    rule = {'ports': [{'port': 80}, {'protocol': 'UDP', 'port': 53}, {'protocol': 'SCTP'},
                      {'port': 'http'}, {'protocol': 'UDP', 'port': 'dns-udp'},
                      {'port': 8000, 'endPort': 8080}, {'port': 90, 'endPort': 90},
                      {'protocol': None, 'port': 1}, {}]}
    assert parse_policy(ingress(rule)).ingress[0].ports == (
        PolicyPort('TCP', 80), PolicyPort('UDP', 53), PolicyPort('SCTP'),
        PolicyPort('TCP', 'http'), PolicyPort('UDP', 'dns-udp'),
        PolicyPort('TCP', 8000, 8080), PolicyPort('TCP', 90, 90), PolicyPort('TCP', 1),
        PolicyPort('TCP'))


def test_egress_rules_use_to():
    policy = parse_policy(raw({'podSelector': {'matchLabels': {'pod': 'a'}},
                               'egress': [{'to': [{'ipBlock': {'cidr': '0.0.0.0/0'}}],
                                           'ports': [{'port': 443}]}]}))
    assert policy.policy_types == ('Ingress', 'Egress')
    assert policy.egress == (Rule((Peer(ip_block=IPBlock(ipaddress.ip_network('0.0.0.0/0'))),),
                                  (PolicyPort('TCP', 443),)),)


# -- refusals -------------------------------------------------------------------
PORT_AT = 'spec.ingress[0].ports[1]'


def port_refusal(port):
    return refusal(ingress({'ports': [{'port': 80}, port]}))


@pytest.mark.parametrize('port, message', [
    ({'endPort': 90}, PORT_AT + '.endPort: may not be specified when port is not specified'),
    ({'port': 90, 'endPort': 80}, PORT_AT + '.endPort: must be >= port (90)'),
    ({'port': 'http', 'endPort': 90},
     PORT_AT + ".endPort: may not be specified when port is a named port ('http')"),
    ({'port': 80, 'endPort': 65536}, PORT_AT + '.endPort: 65536 must be a port number'),
    ({'port': 80, 'endPort': '90'}, PORT_AT + ".endPort: '90' must be a port number"),
    ({'port': 0}, PORT_AT + '.port: 0 must be a port number (an integer from 1 to 65535)'),
    ({'port': 65536}, PORT_AT + '.port: 65536 must be a port number'),
    ({'port': True}, PORT_AT + '.port: True must be a port number'),
    ({'port': 8.5}, PORT_AT + '.port: 8.5 must be a port number'),
    ({'protocol': 'ICMP'}, PORT_AT + ".protocol: 'ICMP' is not supported (TCP, UDP, SCTP)"),
    ({'protocol': 'tcp', 'port': 80}, PORT_AT + ".protocol: 'tcp' is not supported"),
    ({'protocol': ''}, PORT_AT + ".protocol: '' is not supported"),
    ({'port': 'Http'}, PORT_AT + ".port: 'Http' is not an IANA service name"),
    ({'port': 'a--b'}, PORT_AT + ".port: 'a--b' is not"),
    ({'port': '-ab'}, PORT_AT + ".port: '-ab' is not"),
    ({'port': 'abcdefghijklmnop'}, PORT_AT + ".port: 'abcdefghijklmnop' is not"),
    ({'port': '8080'}, PORT_AT + ".port: '8080' is not"),  # a string is a name: needs a letter
    ({'port': ''}, PORT_AT + ".port: '' is not"),
    ({'prot': 80}, PORT_AT + '.prot: unknown field (known: protocol, port, endPort)'),
])
def test_port_refusals_name_the_field(port, message):
    assert 'NetworkPolicy x/p: ' + message in port_refusal(port)


def peer_refusal(peer):
    return refusal(ingress({'from': [{'namespaceSelector': {}}, peer]}))


PEER_AT = 'spec.ingress[0].from[1]'


@pytest.mark.parametrize('peer, message', [
    ({}, PEER_AT + ': must specify a peer'),
    (None, PEER_AT + ': must specify a peer'),
    ({'podSelector': None}, PEER_AT + ': must specify a peer'),
    ({'ipBlock': {'cidr': '10.0.0.0/8'}, 'podSelector': {}},
     PEER_AT + ': may not specify both ipBlock and another peer (podSelector, ipBlock)'),
    ({'ipBlock': {'cidr': '10.0.0.0/8'}, 'namespaceSelector': {}},
     PEER_AT + ': may not specify both ipBlock and another peer'),
    ({'ipBlock': {}}, PEER_AT + '.ipBlock.cidr: required'),
    ({'ipBlock': {'cidr': ''}}, PEER_AT + '.ipBlock.cidr: required'),
    ({'ipBlock': {'cidr': '10.0.0.0'}}, PEER_AT + ".ipBlock.cidr: '10.0.0.0' is not a valid CIDR"),
    ({'ipBlock': {'cidr': '10.0.0.0/33'}}, PEER_AT + ".ipBlock.cidr: '10.0.0.0/33' is not"),
    ({'ipBlock': {'cidr': '10.0.0.256/24'}}, PEER_AT + ".ipBlock.cidr: '10.0.0.256/24' is not"),
    ({'ipBlock': {'cidr': 'banana/8'}}, PEER_AT + ".ipBlock.cidr: 'banana/8' is not"),
    ({'ipBlock': {'cidr': '010.0.0.0/8'}}, PEER_AT + ".ipBlock.cidr: '010.0.0.0/8' is not"),
    ({'ipBlock': {'cidr': '10.0.0.0/255.0.0.0'}}, PEER_AT + '.ipBlock.cidr: '),
    ({'ipBlock': {'cidr': 'fe80::%eth0/64'}}, PEER_AT + '.ipBlock.cidr: '),
    ({'ipBlock': {'cidr': 10}}, PEER_AT + '.ipBlock.cidr: 10 is not a valid CIDR'),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.1.0.0/24']}},
     PEER_AT + ".ipBlock.except[0]: '10.1.0.0/24' must be a strict subset of cidr 10.0.0.0/16"),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.1.0/24', '10.0.0.0/16']}},
     PEER_AT + ".ipBlock.except[1]: '10.0.0.0/16' must be a strict subset"),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.0.0/8']}},
     PEER_AT + ".ipBlock.except[0]: '10.0.0.0/8' must be a strict subset"),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['2001:db8::/64']}},
     PEER_AT + ".ipBlock.except[0]: '2001:db8::/64' must be a strict subset"),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': ['10.0.0.0/33']}},
     PEER_AT + ".ipBlock.except[0]: '10.0.0.0/33' is not a valid CIDR"),
    ({'ipBlock': {'cidr': '10.0.0.0/16', 'except': '10.0.1.0/24'}},
     PEER_AT + '.ipBlock.except: must be a list'),
    ({'podSelector': {'matchLabel': {}}},
     PEER_AT + '.podSelector.matchLabel: unknown field (known: matchLabels, matchExpressions)'),
    ({'ipblock': {}}, PEER_AT + '.ipblock: unknown field'),
])
def test_peer_refusals_name_the_field(peer, message):
    assert 'NetworkPolicy x/p: ' + message in peer_refusal(peer)


EXPR_AT = 'spec.podSelector.matchExpressions[0]'


@pytest.mark.parametrize('expression, message', [
    ({'key': 'k', 'operator': 'Equals', 'values': ['v']},
     EXPR_AT + ".operator: 'Equals' is not a valid selector operator "
               "(In, NotIn, Exists, DoesNotExist)"),
    ({'key': 'k', 'operator': 'in', 'values': ['v']}, EXPR_AT + ".operator: 'in' is not"),
    ({'key': 'k', 'values': ['v']}, EXPR_AT + '.operator: None is not'),
    ({'key': 'k', 'operator': 'In'}, EXPR_AT + '.values: required, must be non-empty when '
                                               'operator is In or NotIn'),
    ({'key': 'k', 'operator': 'NotIn', 'values': []}, EXPR_AT + '.values: required'),
    ({'key': 'k', 'operator': 'Exists', 'values': ['v']},
     EXPR_AT + '.values: may not be specified when operator is Exists or DoesNotExist'),
    ({'key': 'k', 'operator': 'DoesNotExist', 'values': ['v']}, EXPR_AT + '.values: may not'),
    ({'key': 'k', 'operator': 'In', 'values': 'v'}, EXPR_AT + '.values: must be a list'),
    ({'key': 'bad key', 'operator': 'Exists'}, EXPR_AT + ".key: 'bad key' is not a label key"),
    ({'operator': 'Exists'}, EXPR_AT + '.key: None is not a label key'),
    ({'key': 'k', 'operator': 'In', 'values': [1]}, EXPR_AT + '.values[0]: 1 is not a label value'),
    ({'key': 'k', 'operator': 'In', 'values': ['-v']}, EXPR_AT + ".values[0]: '-v' is not"),
    ({'key': 'k', 'operator': 'In', 'value': ['v']}, EXPR_AT + '.value: unknown field'),
])
def test_selector_refusals_name_the_field(expression, message):
    assert message in refusal(raw({'podSelector': {'matchExpressions': [expression]}}))


@pytest.mark.parametrize('labels, message', [
    ({'bad key': 'v'}, "spec.podSelector.matchLabels: 'bad key' is not a label key"),
    ({'-x.io/k': 'v'}, "spec.podSelector.matchLabels: '-x.io/k' is not a label key"),
    ({'k': 'a b'}, "spec.podSelector.matchLabels['k']: 'a b' is not a label value"),
    ({'k': 5}, "spec.podSelector.matchLabels['k']: 5 is not a label value"),
    ({'k': 'v' * 64}, "spec.podSelector.matchLabels['k']: "),
])
def test_match_labels_refusals(labels, message):
    assert message in refusal(raw({'podSelector': {'matchLabels': labels}}))


@pytest.mark.parametrize('spec, message', [
    ({'policyTypes': ['Ingress', 'Foo']},
     "spec.policyTypes[1]: 'Foo' is not supported (Ingress, Egress)"),
    ({'policyTypes': ['ingress']}, "spec.policyTypes[0]: 'ingress' is not supported"),
    ({'policyTypes': ['Ingress', 'Egress', 'Ingress']},
     'spec.policyTypes: may not specify more than two policyTypes'),
    ({'policyTypes': 'Ingress'}, 'spec.policyTypes: must be a list'),
    ({'ingress': {}}, 'spec.ingress: must be a list'),
    ({'ingress': [{'form': []}]}, 'spec.ingress[0].form: unknown field (known: from, ports)'),
    ({'egress': [{'from': []}]}, 'spec.egress[0].from: unknown field (known: to, ports)'),
    ({'egress': [{'to': {}}]}, 'spec.egress[0].to: must be a list'),
    ({'egress': [{}, {'ports': 80}]}, 'spec.egress[1].ports: must be a list'),
    ({'egress': [{'ports': [{'port': 80, 'endPort': 70}]}]},
     'spec.egress[0].ports[0].endPort: must be >= port (80)'),
    ({'egress': [{'to': [{'ipBlock': {'cidr': '1.2.3.4/40'}}]}]},
     "spec.egress[0].to[0].ipBlock.cidr: '1.2.3.4/40' is not a valid CIDR"),
    ({'podselector': {}}, 'spec.podselector: unknown field'),
    ({'podSelector': []}, 'spec.podSelector: must be a mapping'),
    ({'ingress': ['all']}, 'spec.ingress[0]: must be a mapping'),
])
def test_spec_refusals_name_the_field(spec, message):
    assert 'NetworkPolicy x/p: ' + message in refusal(raw(spec))


def test_refusal_subject_names_the_policy():
    with pytest.raises(SpecError) as info:
        parse_policy(raw({'policyTypes': ['Both']}, name='deny-all'))
    assert info.value.subject == 'NetworkPolicy x/deny-all'


def test_spec_must_be_a_mapping_and_name_is_required():
    assert 'NetworkPolicy x/p: spec: must be a mapping' in refusal(raw('all'))
    assert 'NetworkPolicy: metadata.name: required' in refusal({'metadata': {}})
    assert 'NetworkPolicy: must be a mapping' in refusal(['x'])
