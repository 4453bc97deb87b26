"""Services (issue 23, G8): read and refused as the API server does, given
addresses that are the same on every run, their endpoints picked as the
EndpointSlice controller picks them, and compiled into the table
kube-proxy's nftables mode would load. The table's kernel test is
tests/integration/test_services_table.py."""
import ipaddress

import pytest
import yaml
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.plan import manifests
from ansible.module_utils.podnet.services import endpoints, ruleset, spec


def service(name='web', **body):
    body.setdefault('selector', {'app': 'web'})
    body.setdefault('ports', [{'name': 'http', 'port': 80, 'targetPort': 'http'}])
    return {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': name}, 'spec': body}


def load(tmp_path, *docs):
    path = tmp_path / 'svc.yaml'
    path.write_text(yaml.safe_dump_all(docs))
    return manifests.load([path], ['node1', 'node2'])


def refused(tmp_path, *docs):
    """The refusal of the manifests, or of the plan's allocation after them:
    both before any node changes."""
    with pytest.raises(SpecError) as info:
        spec.plan(load(tmp_path, *docs).services)
    return str(info.value)


def planned(tmp_path, *docs):
    return {'%(namespace)s/%(name)s' % s: s for s in spec.plan(load(tmp_path, *docs).services)}


# -- reading and refusing --------------------------------------------------------
def test_a_service_is_read_with_the_api_servers_defaults(tmp_path):
    web = planned(tmp_path, service(ports=[{'port': 80}]))['default/web']
    assert web['type'] == 'ClusterIP' and web['ports'] == [
        {'name': None, 'protocol': 'TCP', 'port': 80, 'target_port': 80, 'node_port': None}]
    assert web['affinity_timeout'] is None and not web['external_local']


def test_services_are_no_longer_ignored_objects(tmp_path):
    found = load(tmp_path, service(), {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}})
    assert [s.key for s in found.services] == ['default/web'] and found.ignored == ['ConfigMap default/c']


@pytest.mark.parametrize('body, words', [
    (dict(clusterIP='10.44.0.5'), 'spec.clusterIP: 10.44.0.5 is not in the service CIDR 10.43.0.0/16'),
    (dict(clusterIP='10.43.0.0'), 'spec.clusterIP: 10.43.0.0 is not in the service CIDR'),
    (dict(clusterIP='web'), "spec.clusterIP: 'web' is not an IPv4 address"),
    (dict(type='NodePort', ports=[{'port': 80, 'nodePort': 29999}]),
     'spec.ports[0].nodePort: 29999 is not in the node port range 30000-32767'),
    (dict(ports=[{'port': 80, 'nodePort': 30001}]), 'spec.ports[0].nodePort: only for type NodePort or LoadBalancer'),
    (dict(type='NodePort', clusterIP='None'), 'spec.clusterIP: None (headless) needs type ClusterIP'),
    (dict(ports=[{'port': 80}, {'port': 81}]), 'spec.ports[0].name: required when a Service has more than one port'),
    (dict(ports=[{'name': 'a', 'port': 80}, {'name': 'b', 'port': 80}]), 'spec.ports[1]: TCP/80 is declared twice'),
    (dict(ports=[]), 'spec.ports: required, at least one port'),
    (dict(externalTrafficPolicy='Local'), 'spec.externalTrafficPolicy: only for type NodePort or LoadBalancer'),
    (dict(sessionAffinity='Cookie'), "spec.sessionAffinity: 'Cookie' is not None or ClientIP"),
    (dict(sessionAffinity='ClientIP', sessionAffinityConfig={'clientIP': {'timeoutSeconds': 86401}}),
     'timeoutSeconds: 86401 must be 1 to 86400'),
    (dict(type='Ingress'), "spec.type: 'Ingress' is not one of"),
    (dict(ports=[{'port': 80, 'targetPort': 'Not_A_Name'}]), 'spec.ports[0].targetPort'),
    (dict(selector={'app': 'we b'}), 'spec.selector'),
    (dict(loadBalancerSourceRangez=[]), 'spec.loadBalancerSourceRangez: unknown field'),
])
def test_bad_services_are_refused_naming_object_and_field(tmp_path, body, words):
    message = refused(tmp_path, service(**body))
    assert 'Service default/web' in message and words in message, message


def test_a_cluster_ip_or_node_port_taken_twice_is_refused_naming_both(tmp_path):
    assert 'spec.clusterIP: 10.43.0.20 is also the clusterIP of Service default/a' in refused(
        tmp_path, service('a', clusterIP='10.43.0.20'), service('b', clusterIP='10.43.0.20'))
    assert 'spec.ports[0].nodePort: 30080 is also a node port of Service default/a' in refused(
        tmp_path, service('a', type='NodePort', ports=[{'port': 80, 'nodePort': 30080}]),
        service('b', type='NodePort', ports=[{'port': 81, 'nodePort': 30080}]))


def test_a_service_of_an_undeclared_namespace_is_refused(tmp_path):
    doc = service()
    doc['metadata']['namespace'] = 'shop'
    assert "namespace 'shop' is not declared" in refused(tmp_path, doc)


def test_a_service_that_selects_nothing_or_has_no_selector_is_valid(tmp_path):
    found = planned(tmp_path, service('a', selector={'app': 'nobody'}), service('b', selector=None))
    assert found['default/b']['selector'] is None


# -- addresses -------------------------------------------------------------------------
def test_cluster_ips_are_deterministic_distinct_and_in_the_service_cidr(tmp_path):
    docs = [service('s%d' % i) for i in range(50)]
    first, again = planned(tmp_path, *docs), planned(tmp_path, *reversed(docs))
    ips = [s['cluster_ip'] for s in first.values()]
    assert len(set(ips)) == 50 and ips == [again[k]['cluster_ip'] for k in first]
    network = ipaddress.IPv4Network(spec.SERVICE_CIDR)
    assert all(ipaddress.IPv4Address(ip) in network for ip in ips)
    assert '10.43.0.1' not in ips  # kubernetes.default's


def test_a_set_cluster_ip_is_kept_and_never_given_to_another(tmp_path):
    found = planned(tmp_path, service('dns', clusterIP=spec.DNS_IP), service('web'))
    assert found['default/dns']['cluster_ip'] == '10.43.0.10' != found['default/web']['cluster_ip']


def test_headless_services_get_no_cluster_ip_and_may_have_no_ports(tmp_path):
    found = planned(tmp_path, service(clusterIP='None', ports=None))
    assert found['default/web']['cluster_ip'] is None and found['default/web']['ports'] == []


def test_node_ports_are_allocated_in_range_unless_set(tmp_path):
    found = planned(tmp_path, service('a', type='NodePort'),
                    service('b', type='LoadBalancer', ports=[{'port': 80, 'nodePort': 30080}]))
    allocated = found['default/a']['ports'][0]['node_port']
    assert 30000 <= allocated <= 32767 and allocated != 30080
    assert found['default/b']['ports'][0]['node_port'] == 30080


def test_affinity_defaults_to_three_hours(tmp_path):
    assert planned(tmp_path, service(sessionAffinity='ClientIP'))['default/web']['affinity_timeout'] == 10800


# -- endpoints --------------------------------------------------------------------------
PODS = [{'namespace': 'default', 'name': 'a', 'node': 'node1', 'labels': {'app': 'web'},
         'ports': [{'name': 'http', 'containerPort': 8080, 'protocol': 'TCP'}]},
        {'namespace': 'default', 'name': 'b', 'node': 'node2', 'labels': {'app': 'web'},
         'ports': [{'name': 'http', 'containerPort': 9090, 'protocol': 'TCP'}]},
        {'namespace': 'default', 'name': 'c', 'node': 'node2', 'labels': {'app': 'web'}, 'ports': []},
        {'namespace': 'other', 'name': 'd', 'node': 'node1', 'labels': {'app': 'web'}, 'ports': []},
        {'namespace': 'default', 'name': 'e', 'node': 'node1', 'labels': {'app': 'db'}, 'ports': []}]
RUNNING = {'default/a': '10.42.0.2', 'default/b': '10.42.1.2', 'default/c': '10.42.1.3', 'other/d': '10.42.0.9',
           'default/e': '10.42.0.3'}


def web(**changes):
    return dict({'namespace': 'default', 'name': 'web', 'type': 'ClusterIP', 'cluster_ip': '10.43.0.50',
                 'selector': {'app': 'web'}, 'ports': [{'name': 'http', 'protocol': 'TCP', 'port': 80,
                                                        'target_port': 'http', 'node_port': None}],
                 'affinity_timeout': None, 'external_local': False, 'internal_local': False,
                 'publish_not_ready': False}, **changes)


def test_endpoints_are_the_selected_running_ready_pods_of_the_namespace_with_named_ports_per_pod():
    found = endpoints.of_service(web(), PODS, RUNNING, {'default/b'})
    assert [(e['pod'], e['ports']) for e in found] == [('default/a', {'http': 8080}), ('default/c', {})]
    ready_too = endpoints.of_service(web(publish_not_ready=True), PODS, RUNNING, {'default/b'})
    assert [e['ports'] for e in ready_too] == [{'http': 8080}, {'http': 9090}, {}]


def test_a_pod_not_running_is_no_endpoint_and_no_selector_means_none():
    assert [e['pod'] for e in endpoints.of_service(web(), PODS, {'default/b': '10.42.1.2'}, ())] == ['default/b']
    assert endpoints.of_service(web(selector=None), PODS, RUNNING, ()) == []


# -- the table ----------------------------------------------------------------------------
def table(services, node='node1', unready=()):
    found = endpoints.resolve(services, PODS, RUNNING, unready)
    return ruleset.compile_node(services, found, node, '10.11.1.11', '10.42.0.0/16')


def test_a_cluster_ip_dispatches_by_one_map_to_a_random_endpoint_each_dnat_ing():
    text = table([web()])
    assert '10.43.0.50 . tcp . 80 : goto svc-default/web/tcp/80' in text
    assert ('numgen random mod 2 vmap { 0 : goto ep-default/web/tcp/80__10.42.0.2/8080, '
            '1 : goto ep-default/web/tcp/80__10.42.1.2/9090 }') in text
    assert 'meta l4proto tcp dnat to 10.42.1.2:9090' in text
    assert 'ip saddr 10.42.0.2 jump mark-hairpin' in text  # hairpin: masquerade, and tell the policy table
    assert 'ip daddr 10.43.0.50 ip saddr != 10.42.0.0/16 jump mark-for-masquerade' in text


def test_a_service_without_endpoints_rejects():
    text = table([web(selector={'app': 'nobody'})])
    assert '10.43.0.50 . tcp . 80 : goto reject-chain' in text and 'svc-default/web' not in text


def test_affinity_remembers_each_client_per_endpoint_with_the_timeout():
    text = table([web(affinity_timeout=600)])
    assert 'set aff-default/web/tcp/80__10.42.0.2/8080 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n' \
           '\t\ttimeout 600s' in text
    assert 'ip saddr @aff-default/web/tcp/80__10.42.1.2/9090 goto ep-default/web/tcp/80__10.42.1.2/9090' in text
    assert 'update @aff-default/web/tcp/80__10.42.0.2/8080 { ip saddr }' in text


def test_node_ports_with_policy_cluster_masquerade_and_go_cluster_wide():
    text = table([web(type='NodePort', ports=[dict(web()['ports'][0], node_port=30080)])])
    assert 'tcp . 30080 : goto ext-default/web/tcp/80' in text
    assert 'chain ext-default/web/tcp/80 {\n\t\tjump mark-for-masquerade\n\t\tgoto svc-default/web/tcp/80' in text


def test_policy_local_serves_only_local_endpoints_and_drops_where_there_are_none():
    local = web(type='LoadBalancer', external_local=True, ports=[dict(web()['ports'][0], node_port=30080)])
    here = table([local], node='node1')
    assert 'chain local-default/web/tcp/80 {\n\t\tgoto ep-default/web/tcp/80__10.42.0.2/8080' in here
    assert '10.11.1.11 . tcp . 80 : goto ext-default/web/tcp/80' in here  # ServiceLB: the node's own address
    nowhere = table([local], node='node3')
    assert 'tcp . 30080 : drop' in nowhere and '10.11.1.11 . tcp . 80 : drop' in nowhere


def test_headless_services_get_no_rules():
    assert 'default/web' not in table([web(cluster_ip=None)])


def test_the_table_is_the_same_text_for_the_same_cluster():
    assert table([web(), web(name='api', cluster_ip='10.43.0.51')]) == \
        table([web(), web(name='api', cluster_ip='10.43.0.51')])


def test_an_empty_selector_picks_every_running_pod_of_the_namespace():
    found = endpoints.of_service(web(selector={}), PODS, RUNNING, ())
    assert [e['pod'] for e in found] == ['default/a', 'default/b', 'default/c', 'default/e']
