"""explain.yml from the lab's outside host to a NodePort or LoadBalancer
port (issue 23, item 5), without a lab: the request checked (each bad
argument named before any probe), the legs planned, and the entry node's
DNAT hops read from the table it would load (listed by a real nft in a
throwaway namespace): Cluster marks for masquerade and picks among all
endpoints, Local keeps the client's address and picks among the node's own,
or drops."""
import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import explain, outsidepath, pathtrace
from ansible.module_utils.podnet.services import endpoints, ruleset

from test_explain import PODS
from test_reset_plan import library
from test_explain_services import CLUSTER, ECHO_A, ECHO_B, RUNNING, planned, served

OUTSIDE_IP = '203.0.113.10'
LAB = {'name': 'lab', 'outside': OUTSIDE_IP, 'underlay': {'node1': '10.11.1.11', 'node2': '10.11.1.12'}}


def external_port(number, node_port, endpoints_, protocol='TCP'):
    return {'name': 'http', 'protocol': protocol, 'port': number, 'node_port': node_port,
            'endpoints': list(endpoints_)}


SERVICES = {'default/echo': served(external_port(80, None, [ECHO_A])),
            'default/echo-nodeport': served(external_port(80, 30080, [ECHO_A, ECHO_B]), type='NodePort'),
            'default/echo-local': served(external_port(80, 30081, [ECHO_B]), type='NodePort',
                                         external_local=True),
            'default/echo-lb': served(external_port(8088, 30088, [ECHO_A, ECHO_B]), type='LoadBalancer')}
BY_NODE = {'node1': SERVICES, 'node2': SERVICES}


# What podnet_facts reports of each node's network (podnet_explain's networks()).
VXLAN = {'node1': {'backend': 'vxlan', 'pod_cidr': '10.42.0.0/24', 'vtep': {'vni': 1, 'address': '10.42.0.0/32'},
                   'underlay': '10.11.1.11'},
         'node2': {'backend': 'vxlan', 'pod_cidr': '10.42.1.0/24', 'vtep': {'vni': 1, 'address': '10.42.1.0/32'},
                   'underlay': '10.11.1.12'}}
HOST_GW = {node: dict(network, backend='host-gw', vtep=None) for node, network in VXLAN.items()}


def locate(to, via=None, port=None, lab=LAB, endpoint=None, networks=VXLAN):
    return explain.locate(PODS, explain.Request('outside', to, port, None, endpoint, via), BY_NODE, lab, networks)


# -- the request -------------------------------------------------------------------------
def test_a_node_port_by_node_and_port_follows_any_endpoint_with_the_entry_node_dnating():
    found = locate('node1:30080', endpoint='default/b')
    service = found['service']
    assert (service['key'], service['kind'], service['ip'], service['port']) == (
        'default/echo-nodeport', 'nodeport', '10.11.1.11', 30080)
    assert found['source'] == {'key': 'outside', 'ip': OUTSIDE_IP, 'node': None} and found['outside']
    entry, other = found['legs']['node1'], found['legs']['node2']
    assert (entry['src'], entry['dst'], entry['port'], entry['iif']) == (OUTSIDE_IP, '10.42.1.2', 80, 'underlay')
    assert entry['external']['endpoint'] == ECHO_B and 'destination_pod' not in entry
    assert other['destination_pod']['key'] == 'default/b' and 'iif' not in other  # the backend's, later


def test_cluster_reads_the_endpoint_s_node_with_the_address_the_entry_node_masquerades_to():
    """The packet leaves node1 masqueraded: node2 sees node1's flannel.1
    address (vxlan) or its underlay address (host-gw), never the outside
    host's; each endpoint's expected source is the probe's yardstick."""
    vxlan = locate('node1:30080', endpoint='default/b')
    assert (vxlan['legs']['node1']['src'], vxlan['legs']['node2']['src']) == (OUTSIDE_IP, '10.42.0.0')
    assert vxlan['service']['sources'] == {'10.42.0.2:8080': '10.42.0.1', '10.42.1.2:80': '10.42.0.0'}
    assert locate('node1:30080', endpoint='default/b', networks=HOST_GW)['legs']['node2']['src'] == '10.11.1.11'
    assert locate('node2:30080', networks=HOST_GW)['service']['sources']['10.42.0.2:8080'] == '10.11.1.12'


def test_local_keeps_the_outside_host_s_address_and_unknown_networks_keep_it_too():
    assert locate('node2:30081')['service']['sources'] == {'10.42.1.2:80': OUTSIDE_IP}
    unknown = locate('node1:30080', endpoint='default/b', networks=None)
    assert unknown['legs']['node2']['src'] == OUTSIDE_IP and set(unknown['service']['sources'].values()) == {None}


@pytest.mark.parametrize('network, same_node, address', [
    (VXLAN['node1'], True, '10.42.0.1'), (VXLAN['node1'], False, '10.42.0.0'),
    (HOST_GW['node1'], False, '10.11.1.11'), (dict(VXLAN['node1'], vtep={'address': ['10.42.0.0/32']}), False,
                                               '10.42.0.0'),
    ({}, True, None), ({'backend': 'vxlan', 'vtep': {'kind': 'not vxlan'}}, False, None)])
def test_the_masquerade_source_is_the_address_of_the_interface_the_packet_leaves_by(network, same_node, address):
    assert outsidepath.masquerade_source(network, same_node) == address


class AddressedLinks:
    """An IPRoute of one namespace: eth0 with a secondary address before
    its primary ones, flannel.1 with its /32."""

    ADDRESSES = {2: [('10.11.9.9', 24, 0x01, 0), ('127.0.0.2', 8, 0, 254), ('10.11.1.11', 24, 0, 0),
                     ('192.0.2.11', 24, 0, 0)],
                 3: [('10.42.0.0', 32, 0, 0)]}

    def get_links(self):
        return [{'index': i, 'flags': 1, 'attrs': [('IFLA_IFNAME', n)], 'IFLA_IFNAME': n}
                for i, n in ((2, 'eth0'), (3, 'flannel.1'))]

    def get_addr(self, family, index):
        return [{'IFA_LOCAL': a, 'prefixlen': n, 'flags': f, 'scope': scope}
                for a, n, f, scope in self.ADDRESSES[index]]


@pytest.mark.parametrize('dev, next_hop, address', [
    ('eth0', '192.0.2.12', '192.0.2.11'), ('eth0', '10.11.1.12', '10.11.1.11'), ('eth0', '198.51.100.1', '10.11.1.11'),
    ('flannel.1', '10.42.1.0', '10.42.0.0'), ('cni0', '10.42.0.5', None)])
def test_the_entry_node_reads_its_masquerade_address_as_the_kernel_picks_it(monkeypatch, dev, next_hop, address):
    monkeypatch.setattr(pathtrace, 'links_by_name', lambda ipr: {
        link['IFLA_IFNAME']: link for link in ipr.get_links()})
    assert pathtrace.Netns(AddressedLinks()).masquerade_source(dev, next_hop) == address


def test_a_service_via_a_node_dials_its_node_port_and_a_load_balancer_port_by_number():
    found = locate('svc/default/echo-nodeport', via='node2')
    assert (found['service']['ip'], found['service']['port'], found['service']['endpoint']) == (
        '10.11.1.12', 30080, ECHO_A)
    lb = locate('node2:8088')
    assert (lb['service']['key'], lb['service']['kind'], lb['service']['port']) == (
        'default/echo-lb', 'loadbalancer', 8088)
    assert locate('node2:30088')['service']['kind'] == 'nodeport'


def test_local_picks_only_the_entry_node_s_endpoints_or_none():
    here = locate('node2:30081')
    assert here['service']['endpoints'] == [ECHO_B] and list(here['legs']) == ['node2']
    assert here['legs']['node2']['destination_pod']['key'] == 'default/b'
    none = locate('node1:30081')
    assert none['service']['endpoint'] is None and none['destination']['ip'] == '10.11.1.11'
    assert list(none['legs']) == ['node1'] and none['legs']['node1']['dst'] == '10.11.1.11'


@pytest.mark.parametrize('args, subject, message', [
    (('svc/default/echo', 'node1'), 'to', 'Service default/echo is ClusterIP: only a NodePort or LoadBalancer'),
    (('node9:30080',), 'to', 'node node9 is not in the inventory (nodes: node1, node2)'),
    (('svc/default/echo-nodeport', 'node9'), 'via', 'node node9 is not in the inventory'),
    (('svc/default/echo-nodeport',), 'via', 'missing: give -e via=<node>'),
    (('node1:31999',), 'to', 'no NodePort or LoadBalancer TCP port 31999 on node1 '
                             '(external ports: 30088/TCP (default/echo-lb), 8088/TCP'),
    (('node1:30080', 'node1'), 'via', 'only with to=svc/<namespace>/<name>'),
    (('nodeport',), 'to', "'nodeport' is neither <node>:<port> nor svc/<namespace>/<name>"),
])
def test_bad_outside_arguments_are_named(args, subject, message):
    with pytest.raises(SpecError) as raised:
        locate(*args)
    assert raised.value.subject == subject and message in str(raised.value)


def test_no_outside_host_or_via_from_a_pod_is_refused():
    with pytest.raises(SpecError) as raised:
        locate('node1:30080', lab=dict(LAB, outside=None))
    assert raised.value.subject == 'from' and 'no outside host' in str(raised.value)
    with pytest.raises(SpecError) as raised:
        explain.locate(PODS, explain.Request('default/a', 'svc/default/echo', via='node1'), BY_NODE)
    assert raised.value.subject == 'via'


# -- the entry node's DNAT, from the table it loads ---------------------------------------
@pytest.fixture(scope='module')
def listed():
    """`nft -j list ruleset` of node1's Services table: a NodePort with
    policy Cluster, one with Local (node1 has an endpoint), one with Local
    whose only endpoint is node2's, and a LoadBalancer."""
    if os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('nft'):
        pytest.skip('loading an nft table into a namespace needs root, unshare and nft')
    http = {'name': 'http', 'protocol': 'TCP', 'port': 80, 'target_port': 'http'}
    services = [planned('cluster', '10.43.0.60', type='NodePort', ports=[dict(http, node_port=30080)]),
                planned('local', '10.43.0.61', type='NodePort', external_local=True,
                        ports=[dict(http, node_port=30081)]),
                planned('far', '10.43.0.62', type='NodePort', external_local=True, selector={'app': 'b'},
                        ports=[dict(http, node_port=30082)]),
                planned('lb', '10.43.0.63', type='LoadBalancer', ports=[dict(http, port=8088, node_port=30083)])]
    far = dict(CLUSTER[1], name='c', labels={'app': 'b'})  # far's only endpoint, on node2
    running = dict(RUNNING, **{'default/c': '10.42.1.3'})
    text = ruleset.compile_node(services, endpoints.resolve(services, CLUSTER + [far], running, ()), 'node1',
                                '10.11.1.11', '10.42.0.0/16')
    done = subprocess.run(['unshare', '--net', 'sh', '-c', 'nft -f - && nft -j list ruleset'],
                          input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def external(key, port, followed, local=False, kind='nodeport', ip='10.11.1.11', endpoints_=(ECHO_A, ECHO_B)):
    return {'key': key, 'kind': kind, 'ip': ip, 'port': port, 'protocol': 'TCP', 'external_local': local,
            'endpoints': [dict(e, port=8080 if e is ECHO_A else 80) for e in endpoints_],
            'endpoint': followed, 'why': 'the first by pod name'}


def test_cluster_marks_for_masquerade_and_picks_among_all_endpoints(listed):
    hops, rejected, marked = outsidepath.dnat_hops(
        listed, external('default/cluster', 30080, ECHO_B), OUTSIDE_IP)
    assert not rejected and [h['problem'] for h in hops] == [None] * 4
    assert hops[0]['says'] == ('nat prerouting, chain services: service-nodeports: tcp . 30080 : goto '
                               'ext-default/cluster/tcp/80 (Service default/cluster, 10.11.1.11:30080)')
    assert hops[1]['says'].startswith('chain ext-default/cluster/tcp/80: externalTrafficPolicy Cluster: jump '
                                      'mark-for-masquerade (mark 0x4000), goto svc-default/cluster/tcp/80')
    assert hops[2]['says'].startswith('chain svc-default/cluster/tcp/80: numgen random mod 2')
    assert hops[3]['says'].startswith('chain ep-default/cluster/tcp/80__10.42.1.2/80: dnat to 10.42.1.2:80')
    assert marked is True


def test_the_masquerade_hop_names_the_address_the_endpoint_sees():
    assert outsidepath.masquerade_hop(True, OUTSIDE_IP, '10.42.0.0', 'flannel.1')['says'] == (
        'nat postrouting, chain masquerading: mark 0x4000 set: masquerade fully-random to 10.42.0.0, flannel.1\'s '
        'address: the endpoint sees 10.42.0.0, not 203.0.113.10')
    assert outsidepath.masquerade_hop(True, OUTSIDE_IP, None, 'eth0')['says'].endswith(
        'the endpoint sees the node\'s address on eth0, not 203.0.113.10')
    assert outsidepath.masquerade_hop(False, OUTSIDE_IP)['says'].endswith(
        'not marked, not masqueraded: the endpoint sees the client 203.0.113.10')


def test_local_keeps_the_client_and_picks_the_node_s_own(listed):
    hops, rejected, marked = outsidepath.dnat_hops(
        listed, external('default/local', 30081, ECHO_A, local=True, endpoints_=(ECHO_A,)), OUTSIDE_IP)
    assert not rejected and [h['problem'] for h in hops] == [None] * 4
    assert 'externalTrafficPolicy Local' in hops[1]['says'] and 'goto local-default/local/tcp/80' in hops[1]['says']
    assert hops[2]['says'].startswith('chain local-default/local/tcp/80: goto its one endpoint: default/a')
    assert marked is False


def test_local_without_an_endpoint_on_the_node_stops_dropped(listed):
    hops, rejected, marked = outsidepath.dnat_hops(
        listed, external('default/far', 30082, None, local=True, endpoints_=()), OUTSIDE_IP)
    assert not rejected and marked is None
    assert hops == [{'at': 'ip podnet-services', 'says': 'no-endpoint-nodeports: tcp . 30082 : drop',
                     'problem': 'externalTrafficPolicy Local and no endpoint of default/far on this node: dropped'}]


def test_a_load_balancer_port_is_dispatched_by_service_ips_on_the_node_s_address(listed):
    hops, _, marked = outsidepath.dnat_hops(
        listed, external('default/lb', 8088, ECHO_A, kind='loadbalancer'), OUTSIDE_IP)
    assert hops[0]['says'].startswith('nat prerouting, chain services: service-ips: 10.11.1.11 . tcp . 8088 : '
                                      'goto ext-default/lb/tcp/80')
    assert [h['problem'] for h in hops] == [None] * 4 and marked


def test_the_reply_is_un_nated_to_the_node_s_address():
    service = dict(locate('node1:30080')['service'])
    hop = outsidepath.reverse_nat_hop(service, OUTSIDE_IP, '10.42.0.1')
    assert hop['at'] == 'node1 conntrack' and hop['says'] == (
        'the reply 10.42.0.2:8080 -> 10.42.0.1 reaches the outside host as 10.11.1.11:30080 -> 203.0.113.10: '
        'conntrack undoes the DNAT and the masquerade (reverse NAT)')


def test_the_probe_from_outside_names_the_endpoint_and_the_source_it_saw():
    located = locate('node1:30080')
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': '10.42.0.0', 'endpoint': '10.42.1.2:80'}
    hop, agrees = explain.outcome_hop(probe, None, True, located)
    assert agrees and hop['says'] == ('svc default/echo-nodeport 10.11.1.11:30080: connected; the kernel chose '
                                      'default/b (10.42.1.2:80), the path above follows default/a, which saw '
                                      'source 10.42.0.0')


@pytest.mark.parametrize('chosen, seen, agrees', [
    ('10.42.1.2:80', '10.42.0.0', True), ('10.42.0.2:8080', '10.42.0.1', True),
    ('10.42.1.2:80', OUTSIDE_IP, False), ('10.42.0.2:8080', '10.42.0.0', False), ('10.9.9.9:80', '10.9.9.1', True)])
def test_the_probe_disagrees_when_the_endpoint_it_reached_saw_another_source(chosen, seen, agrees):
    """Each endpoint is judged with the source the path predicts for it
    (one podnet does not know is not judged)."""
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': seen, 'endpoint': chosen}
    hop, agreed = explain.outcome_hop(probe, None, True, locate('node1:30080'))
    assert agreed is agrees
    assert hop['problem'] == (None if agrees else 'DISAGREES with the prediction (source %s)' % (
        '10.42.0.0' if chosen == '10.42.1.2:80' else '10.42.0.1'))


# -- the path put together on the controller --------------------------------------------
def assembled(monkeypatch, located, traces, probe, policy_source=None):
    """podnet_explain's assembly of an outside path, the live reads (the
    outside host's route, the fabric, the probe) stood in for."""
    module = library('podnet_explain')
    monkeypatch.setattr(module, 'outside_hops', lambda lab, address: [{'at': 'outside eth0', 'says': address,
                                                                       'problem': None}])
    monkeypatch.setattr(module, 'fabric_part', lambda lab, a, b, address: [{'at': 'fabric %s-%s' % (a, b),
                                                                            'says': address, 'problem': None}])
    monkeypatch.setattr(module, 'outside_probe', lambda lab, located_: probe)
    return module.assemble({'located': located, 'traces': traces, 'lab': LAB, 'policy_source': policy_source})


def trace(*ats, problem=None):
    return {'hops': [{'at': at, 'says': '', 'problem': problem if at == ats[-1] else None} for at in ats],
            'rejected': False}


def test_a_cluster_path_crosses_to_the_endpoint_s_node_and_back_un_nated(monkeypatch):
    located = locate('node1:30080', endpoint='default/b')
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': '10.42.0.0', 'endpoint': '10.42.1.2:80'}
    path = assembled(monkeypatch, located, {'node1': dict(trace('node1 eth0', 'ip podnet-services', 'node1 route'),
                                                          masquerades_to='10.42.0.0'),
                                            'node2': trace('node2 flannel.1', 'default/b eth0')}, probe)
    assert [h['at'] for h in path['hops']] == [
        'outside eth0', 'fabric outside-node1', 'node1 eth0', 'ip podnet-services', 'node1 route',
        'fabric node1-node2', 'node2 flannel.1', 'NetworkPolicy', 'default/b eth0', 'node1 conntrack',
        'probe']
    assert path['agrees'] and path['stops_at'] is None
    assert path['hops'][-2]['says'].startswith('the reply 10.42.1.2:80 -> 10.42.0.0 reaches the outside host as '
                                               '10.11.1.11:30080 -> 203.0.113.10')


# default/b admits 10.42.0.0/24 (node1's pod network, flannel.1's address in it) or the outside host only.
def admitting(cidr):
    return {'policies': [{'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
                          'metadata': {'name': 'only-' + cidr.split('/')[0], 'namespace': 'default'},
                          'spec': {'podSelector': {'matchLabels': {'app': 'b'}}, 'policyTypes': ['Ingress'],
                                   'ingress': [{'from': [{'ipBlock': {'cidr': cidr}}]}]}}],
            'namespaces': {'default': {}},
            'pods': [{'namespace': 'default', 'name': 'a', 'node': 'node1', 'ip': '10.42.0.2', 'labels': {},
                      'ports': []},
                     {'namespace': 'default', 'name': 'b', 'node': 'node2', 'ip': '10.42.1.2', 'labels': {'app': 'b'},
                      'ports': [{'name': 'http', 'containerPort': 80, 'protocol': 'TCP'}]}]}


@pytest.mark.parametrize('cidr, allowed', [('10.42.0.0/24', True), ('203.0.113.0/24', False)])
def test_the_endpoint_s_policies_judge_the_masqueraded_source_on_another_node(monkeypatch, cidr, allowed):
    located = locate('node1:30080', endpoint='default/b')
    probe = {'outcome': 'connected' if allowed else 'timeout', 'delivered': allowed,
             'seen_source': '10.42.0.0' if allowed else None, 'endpoint': '10.42.1.2:80' if allowed else None}
    path = assembled(monkeypatch, located, {'node1': dict(trace('node1 eth0'), masquerades_to='10.42.0.0'),
                                            'node2': trace('default/b eth0')}, probe, admitting(cidr))
    ingress = next(h for h in path['hops'] if h['at'] == 'NetworkPolicy ingress')
    assert ingress['says'].startswith("from 10.42.0.0, node1's masquerade: ingress of default/b: "), ingress
    assert (ingress['problem'] is None) is allowed and path['verdict']['allowed'] is allowed and path['agrees']


def test_an_endpoint_on_the_entry_node_is_judged_before_the_masquerade(monkeypatch):
    located = locate('node1:30080', endpoint='default/a')
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': '10.42.0.1', 'endpoint': '10.42.0.2:8080'}
    source = admitting('203.0.113.0/24')
    source['pods'][0]['labels'] = {'app': 'b'}
    path = assembled(monkeypatch, located, {'node1': dict(trace('node1 eth0', 'default/a eth0'),
                                                          masquerades_to='10.42.0.1')}, probe, source)
    ingress = next(h for h in path['hops'] if h['at'] == 'NetworkPolicy ingress')
    assert ingress['problem'] is None and ingress['says'].startswith(
        'from 203.0.113.10, judged in forward before postrouting masquerades it to 10.42.0.1: ingress of default/a: ')
    assert path['agrees'] and path['hops'][-2]['says'].startswith('the reply 10.42.0.2:8080 -> 10.42.0.1 ')


def test_an_endpoint_node_read_for_another_source_than_the_masquerade_s_is_flagged(monkeypatch):
    located = locate('node1:30080', endpoint='default/b')
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': '10.42.0.7', 'endpoint': '10.42.1.2:80'}
    path = assembled(monkeypatch, located, {'node1': dict(trace('node1 eth0'), masquerades_to='10.42.0.7'),
                                            'node2': trace('default/b eth0')}, probe)
    assert path['stops_at'] == {'at': 'node2', 'says': 'read for a packet from 10.42.0.0', 'problem': (
        "the entry node sends it from 10.42.0.7: this half is not the packet's (a node address podnet_facts did "
        "not report?)")}
    assert not path['agrees']


def test_a_local_drop_stops_the_path_and_agrees_with_a_timeout(monkeypatch):
    located = locate('node1:30081')
    probe = {'outcome': 'timeout', 'delivered': False, 'seen_source': None, 'endpoint': None}
    path = assembled(monkeypatch, located, {'node1': trace('node1 eth0', 'ip podnet-services', problem='dropped')},
                     probe)
    assert [h['at'] for h in path['hops']][-2:] == ['ip podnet-services', 'probe']
    assert path['stops_at']['problem'] == 'dropped' and path['agrees']
