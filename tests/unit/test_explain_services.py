"""The path explainer meets Services (issue 23, item 5), without a lab: a
Service target checked against the source node's record (each bad argument
named), the endpoint the path follows and why, the DNAT hops read from the
table kube-proxy's nftables mode would load (listed by a real nft in a
throwaway namespace), and the probe's outcome against the prediction."""
import json
import os
import shutil
import subprocess

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import explain, servicepath
from ansible.module_utils.podnet.services import endpoints, ruleset

from test_explain import PODS

ECHO_A = {'pod': 'default/a', 'node': 'node1', 'ip': '10.42.0.2', 'port': 8080}
ECHO_B = {'pod': 'default/b', 'node': 'node2', 'ip': '10.42.1.2', 'port': 80}


def served(*ports, **fields):
    """A Service as podnet_facts `services` gives it."""
    return dict({'type': 'ClusterIP', 'cluster_ip': '10.43.0.50', 'affinity_timeout': None,
                 'external_local': False, 'internal_local': False, 'ports': list(ports)}, **fields)


def port(number, endpoints_=(), name=None, protocol='TCP'):
    return {'name': name, 'protocol': protocol, 'port': number, 'node_port': None, 'endpoints': list(endpoints_)}


SERVICES = {'default/echo': served(port(80, [ECHO_A, ECHO_B], 'http'), port(81, [ECHO_B], 'udp', 'UDP')),
            'default/nothing': served(port(80), cluster_ip='10.43.0.51'),
            'default/near': served(port(80, [ECHO_A, ECHO_B]), cluster_ip='10.43.0.52', internal_local=True),
            'default/headless': served(port(80, [ECHO_A]), cluster_ip=None)}
BY_NODE = {'node1': SERVICES, 'node2': SERVICES}


def locate(source, destination, port_=None, protocol=None, endpoint=None):
    return explain.locate(PODS, explain.Request(source, destination, port_, protocol, endpoint), BY_NODE)


# -- the request -------------------------------------------------------------------------
def test_a_service_target_follows_its_first_endpoint_and_probes_the_cluster_ip():
    found = locate('default/c', 'svc/default/echo')
    service = found['service']
    assert (service['port'], service['name'], service['endpoint']) == (80, 'http', ECHO_A)
    assert service['why'].startswith("the first by pod name, the numgen map's 0")
    assert found['destination']['key'] == 'default/a' and found['port'] == 8080  # after DNAT
    leg = found['legs']['node1']
    assert (leg['dst'], leg['port'], leg['service']['ip'], leg['service']['port']) == ('10.42.0.2', 8080,
                                                                                       '10.43.0.50', 80)
    assert leg['destination_pod']['key'] == 'default/a' and list(found['legs']) == ['node1']


def test_another_endpoint_a_cluster_ip_and_a_port_by_name_or_number():
    found = locate('default/c', '10.43.0.50', 'http', endpoint='default/b')
    assert found['service']['endpoint'] == ECHO_B and found['service']['why'] == 'as asked (-e endpoint=default/b)'
    assert found['legs']['node2'] == {'src': '10.42.0.3', 'dst': '10.42.1.2', 'port': 80, 'protocol': 'TCP',
                                      'destination_pod': {k: v for k, v in PODS['node2']['default/b'].items()
                                                          if k in ('ip', 'mac', 'netns', 'veth')}
                                      | {'key': 'default/b'}}
    udp = locate('default/c', 'svc/default/echo', '81', 'udp')
    assert (udp['service']['name'], udp['protocol'], udp['service']['endpoint']) == ('udp', 'UDP', ECHO_B)


def test_a_client_that_is_an_endpoint_goes_through_its_node_and_back_hairpin():
    found = locate('default/a', 'svc/default/echo')
    assert found['legs']['node1']['destination_pod']['key'] == 'default/a'
    assert 'service' in found['legs']['node1']


def test_a_service_without_endpoints_stops_on_the_source_node():
    found = locate('default/a', 'svc/default/nothing')
    assert found['service']['endpoint'] is None and found['destination'] == {
        'key': 'svc default/nothing 10.43.0.51:80', 'ip': '10.43.0.51', 'node': None}
    assert list(found['legs']) == ['node1'] and found['legs']['node1']['dst'] == '10.43.0.51'


def test_internal_traffic_policy_local_keeps_the_source_node_s_endpoints():
    assert locate('default/c', 'svc/default/near')['service']['endpoints'] == [ECHO_A]
    assert locate('default/b', 'svc/default/near')['service']['endpoints'] == [ECHO_B]


@pytest.mark.parametrize('args, subject, message', [
    (('default/a', 'svc/default/nope'), 'to', 'no Service default/nope in the cluster (Services: default/echo,'),
    (('default/a', 'svc/echo'), 'to', "'svc/echo' is not a Service as svc/<namespace>/<name>"),
    (('default/a', 'svc/default/headless'), 'to', 'Service default/headless is headless (clusterIP: None)'),
    (('default/a', '10.43.9.9'), 'to', '10.43.9.9 is in the service CIDR 10.43.0.0/16, but no Service has it '
                                       '(ClusterIPs: 10.43.0.50 default/echo,'),
    (('default/a', 'svc/default/echo', '82'), 'port', "Service default/echo has no TCP port '82' "
                                                      "(its ports: TCP/80 (http), UDP/81 (udp))"),
    (('default/a', 'svc/default/echo', 'udp'), 'port', "Service default/echo has no TCP port 'udp'"),
    (('default/a', 'svc/default/nothing', None, 'UDP'), 'port', 'Service default/nothing has no UDP port'),
    (('default/a', 'svc/default/echo', None, None, 'default/c'), 'endpoint',
     'default/c is no endpoint of Service default/echo port 80 (endpoints: default/a, default/b)'),
    (('default/a', 'default/b', None, None, 'default/b'), 'endpoint', 'only for a Service target')])
def test_bad_service_arguments_are_named(args, subject, message):
    with pytest.raises(SpecError) as raised:
        locate(*args)
    assert raised.value.subject == subject and message in str(raised.value)


def test_a_node_with_no_services_record_says_so():
    with pytest.raises(SpecError) as raised:
        explain.locate(PODS, explain.Request('default/a', 'svc/default/echo'), {'node1': None})
    assert "the source's node serves no Services" in str(raised.value)


# -- the DNAT hops, from the table the node loads ------------------------------------------------
CLUSTER = [{'namespace': 'default', 'name': 'a', 'node': 'node1', 'labels': {'app': 'echo'},
            'ports': [{'name': 'http', 'containerPort': 8080, 'protocol': 'TCP'}]},
           {'namespace': 'default', 'name': 'b', 'node': 'node2', 'labels': {'app': 'echo'},
            'ports': [{'name': 'http', 'containerPort': 80, 'protocol': 'TCP'}]}]
RUNNING = {'default/a': '10.42.0.2', 'default/b': '10.42.1.2'}


def planned(name, cluster_ip, **changes):
    return dict({'namespace': 'default', 'name': name, 'type': 'ClusterIP', 'cluster_ip': cluster_ip,
                 'selector': {'app': 'echo'}, 'ports': [{'name': 'http', 'protocol': 'TCP', 'port': 80,
                                                         'target_port': 'http', 'node_port': None}],
                 'affinity_timeout': None, 'external_local': False, 'internal_local': False,
                 'publish_not_ready': False}, **changes)


@pytest.fixture(scope='module')
def listed():
    """`nft -j list ruleset` of node1's Services table (echo, echo-sticky
    with a client remembered, nothing), as a real nft lists it."""
    if os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('nft'):
        pytest.skip('loading an nft table into a namespace needs root, unshare and nft')
    services = [planned('echo', '10.43.0.50'), planned('sticky', '10.43.0.52', affinity_timeout=10800),
                planned('nothing', '10.43.0.51', selector={'app': 'none'})]
    text = ruleset.compile_node(services, endpoints.resolve(services, CLUSTER, RUNNING, ()), 'node1',
                                '10.11.1.11', '10.42.0.0/16')
    remember = 'add element ip podnet-services aff-default/sticky/tcp/80__10.42.1.2/80 { 10.42.0.3 }\n'
    done = subprocess.run(['unshare', '--net', 'sh', '-c', 'nft -f - && nft -j list ruleset'],
                          input=text + remember, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def leg_service(key, ip, followed, why='the first by pod name'):
    return {'key': key, 'ip': ip, 'port': 80, 'endpoints': [ECHO_A, dict(ECHO_B, port=80)],
            'endpoint': followed, 'why': why}


def test_the_dnat_hops_name_the_map_the_chain_the_choice_and_the_endpoint(listed):
    hops, rejected = servicepath.dnat_hops(listed, leg_service('default/echo', '10.43.0.50', ECHO_A),
                                           '10.42.0.3', 'TCP')
    assert not rejected and [h['problem'] for h in hops] == [None] * 3
    assert [h['says'] for h in hops] == [
        'service-ips: 10.43.0.50 . tcp . 80 : goto svc-default/echo/tcp/80 (Service default/echo)',
        'chain svc-default/echo/tcp/80: numgen random mod 2, 1/2 each, over 2 endpoints: '
        'default/a 10.42.0.2:8080 (node1), default/b 10.42.1.2:80 (node2)',
        'chain ep-default/echo/tcp/80__10.42.0.2/8080: dnat to 10.42.0.2:8080, default/a on node1: '
        'the path follows it (the first by pod name)']
    assert {h['at'] for h in hops} == {'ip podnet-services'}
    hairpin, _ = servicepath.dnat_hops(listed, leg_service('default/echo', '10.43.0.50', ECHO_A), '10.42.0.2', 'TCP')
    assert hairpin[-1]['says'].endswith('the client is this endpoint (hairpin): masqueraded, so the reply '
                                        'comes back through the node')


def test_affinity_is_read_with_its_timeout_and_the_client_it_remembers(listed):
    hops, _ = servicepath.dnat_hops(listed, leg_service('default/sticky', '10.43.0.52', ECHO_A),
                                    '10.42.0.3', 'TCP')
    assert hops[1]['says'].endswith('; ClientIP affinity first: a client seen within 10800s goes back to its '
                                    'endpoint (this client: remembered)')
    assert hops[2]['says'].endswith("; this client's affinity sends it to 10.42.1.2:80 now")
    fresh, _ = servicepath.dnat_hops(listed, leg_service('default/sticky', '10.43.0.52', ECHO_A),
                                     '10.42.0.9', 'TCP')
    assert fresh[1]['says'].endswith('(this client: not seen yet, numgen picks)') and 'now' not in fresh[2]['says']


def test_a_service_without_endpoints_stops_at_the_dnat_hop_rejected(listed):
    hops, rejected = servicepath.dnat_hops(listed, leg_service('default/nothing', '10.43.0.51', None),
                                           '10.42.0.3', 'TCP')
    assert rejected and hops == [{'at': 'ip podnet-services', 'problem': servicepath.REJECTED,
                                  'says': 'no-endpoint-services: 10.43.0.51 . tcp . 80 : goto reject-chain'}]
    assert servicepath.REJECTED == 'no endpoints: rejected (ICMP port unreachable)'


def test_a_table_that_lost_the_followed_endpoint_or_the_service_says_so(listed):
    gone = dict(ECHO_A, ip='10.42.0.99', pod='default/gone')
    hops, _ = servicepath.dnat_hops(listed, leg_service('default/echo', '10.43.0.50', gone), '10.42.0.3', 'TCP')
    assert hops[-1]['problem'].startswith('the chain holds no endpoint 10.42.0.99:8080 (default/gone)')
    hops, rejected = servicepath.dnat_hops(listed, dict(leg_service('default/x', '10.43.0.99', ECHO_A)),
                                           '10.42.0.3', 'TCP')
    assert not rejected and hops[0]['problem'].startswith('the node does not serve 10.43.0.99 . tcp . 80')
    hops, _ = servicepath.dnat_hops({'nftables': []}, leg_service('default/echo', '10.43.0.50', ECHO_A),
                                    '10.42.0.3', 'TCP')
    assert hops[0]['problem'] == 'no Services table on this node: nothing DNATs svc default/echo 10.43.0.50:80'


# -- the probe against the prediction ----------------------------------------------------
def test_the_probe_names_the_endpoint_the_kernel_chose_and_what_it_saw():
    located = locate('default/c', 'svc/default/echo')
    probe = {'outcome': 'connected', 'delivered': True, 'seen_source': '10.42.0.3', 'endpoint': '10.42.1.2:80'}
    hop, agrees = explain.outcome_hop(probe, None, True, located)
    assert agrees and hop == {'at': 'probe', 'problem': None, 'says': (
        'svc default/echo 10.43.0.50:80: connected; the kernel chose default/b (10.42.1.2:80), the path above '
        'follows default/a, which saw source 10.42.0.3')}


def test_a_rejected_service_agrees_only_with_a_refusal():
    located = locate('default/a', 'svc/default/nothing')
    refused = {'outcome': 'refused', 'delivered': True, 'seen_source': None, 'endpoint': None}
    assert explain.outcome_hop(refused, None, False, located, rejected=True) == (
        {'at': 'probe', 'says': 'svc default/nothing 10.43.0.51:80: refused', 'problem': None}, True)
    timeout = dict(refused, outcome='timeout', delivered=False)
    hop, agrees = explain.outcome_hop(timeout, None, False, located, rejected=True)
    assert not agrees and hop['problem'] == 'DISAGREES with the prediction (refused)'


def test_the_reply_is_un_nated_back_to_the_cluster_ip():
    service = locate('default/c', 'svc/default/echo')['service']
    assert servicepath.reverse_nat_hop('node1', service, '10.42.0.3') == {
        'at': 'node1 conntrack', 'problem': None,
        'says': 'the reply 10.42.0.2:8080 -> 10.42.0.3 reaches the client as 10.43.0.50:80 -> 10.42.0.3: '
                'conntrack undoes the DNAT (reverse NAT), the client sees only the ClusterIP'}


def test_a_pod_target_is_unchanged_by_services():
    assert 'service' not in locate('default/a', 'default/b')


def test_a_single_endpoint_is_followed_as_the_only_one():
    found = locate('default/a', 'svc/default/echo', '81', 'UDP')
    assert (found['service']['endpoint'], found['service']['why']) == (ECHO_B, 'its only endpoint')
