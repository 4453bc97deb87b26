"""The cluster DNS zone (services/dns.py) against the Kubernetes DNS
specification's records: ClusterIP, headless, StatefulSet pods, SRV, PTR."""
import json

from ansible.module_utils.podnet.services import dns


def service(name, namespace='default', cluster_ip='10.43.0.20', ports=None):
    return {'namespace': namespace, 'name': name, 'type': 'ClusterIP', 'cluster_ip': cluster_ip,
            'selector': {'app': name}, 'affinity_timeout': None, 'external_local': False,
            'publish_not_ready': False,
            'ports': ports if ports is not None else [
                {'name': 'http', 'protocol': 'TCP', 'port': 80, 'target_port': 'web', 'node_port': None},
                {'name': None, 'protocol': 'UDP', 'port': 5353, 'target_port': 5353, 'node_port': None}]}


def endpoint(ip, pod, hostname=None, subdomain=None, ports=None):
    return {'ip': ip, 'pod': pod, 'hostname': hostname or pod.split('/')[1], 'subdomain': subdomain,
            'ports': ports or {'http': 8080, '5353': 5353}}


KUBE_DNS = service('kube-dns', 'kube-system', '10.43.0.10', [
    {'name': 'dns', 'protocol': 'UDP', 'port': 53, 'target_port': 53, 'node_port': None},
    {'name': 'dns-tcp', 'protocol': 'TCP', 'port': 53, 'target_port': 53, 'node_port': None}])


def test_a_cluster_ip_service_has_its_address_srv_per_named_port_and_ptr():
    names = dns.records([KUBE_DNS, service('web')], {})['names']
    assert names['kube-dns.kube-system.svc.cluster.local'] == {'A': ['10.43.0.10']}
    assert names['_dns._udp.kube-dns.kube-system.svc.cluster.local'] == {'SRV': [
        {'priority': 0, 'weight': 100, 'port': 53, 'target': 'kube-dns.kube-system.svc.cluster.local'}]}
    assert names['_dns-tcp._tcp.kube-dns.kube-system.svc.cluster.local']['SRV'][0]['port'] == 53
    assert names['_http._tcp.web.default.svc.cluster.local']['SRV'][0]['port'] == 80  # the Service's port
    assert names['10.0.43.10.in-addr.arpa'] == {'PTR': ['kube-dns.kube-system.svc.cluster.local']}
    assert not [n for n in names if n.startswith('_5353') or '._udp.web.' in n]  # unnamed: no SRV


def test_a_cluster_ip_service_ignores_its_endpoints():
    names = dns.records([service('web')], {'default/web': [endpoint('10.42.1.5', 'default/web-abc')]})['names']
    assert names['web.default.svc.cluster.local'] == {'A': ['10.43.0.20']}
    assert not [n for n in names if n.startswith('web-abc.') or n.startswith('10-42-1-5.')]


def test_a_headless_service_answers_its_ready_endpoints_each_under_its_own_name():
    headless = service('db', cluster_ip=None)
    zone = dns.records([headless], {'default/db': [endpoint('10.42.2.7', 'default/db-xyz'),
                                                   endpoint('10.42.1.9', 'default/db-abc')]})
    names = zone['names']
    assert names['db.default.svc.cluster.local'] == {'A': ['10.42.1.9', '10.42.2.7']}
    # no subdomain naming the Service: the address in dashes is its name
    assert names['10-42-1-9.db.default.svc.cluster.local'] == {'A': ['10.42.1.9']}
    assert names['_http._tcp.db.default.svc.cluster.local'] == {'SRV': [
        {'priority': 0, 'weight': 50, 'port': 8080, 'target': '10-42-1-9.db.default.svc.cluster.local'},
        {'priority': 0, 'weight': 50, 'port': 8080, 'target': '10-42-2-7.db.default.svc.cluster.local'}]}
    assert names['9.1.42.10.in-addr.arpa'] == {'PTR': ['10-42-1-9.db.default.svc.cluster.local']}
    assert zone['zones'] == ['cluster.local', '42.10.in-addr.arpa']


def test_statefulset_pods_are_named_by_hostname_under_their_subdomain():
    zone = dns.records([service('web', 'shop', None)], {'shop/web': [
        endpoint('10.42.1.5', 'shop/web-0', 'web-0', 'web', {'http': 80, '5353': 5353}),
        endpoint('10.42.2.5', 'shop/web-1', 'web-1', 'web', {'http': 80, '5353': 5353})]})
    names = zone['names']
    assert names['web-0.web.shop.svc.cluster.local'] == {'A': ['10.42.1.5']}
    assert names['web-1.web.shop.svc.cluster.local'] == {'A': ['10.42.2.5']}
    assert [r['target'] for r in names['_http._tcp.web.shop.svc.cluster.local']['SRV']] == [
        'web-0.web.shop.svc.cluster.local', 'web-1.web.shop.svc.cluster.local']
    assert names['5.1.42.10.in-addr.arpa'] == {'PTR': ['web-0.web.shop.svc.cluster.local']}


def test_a_hostname_counts_only_under_the_service_its_subdomain_names():
    names = dns.records([service('other', cluster_ip=None)], {'default/other': [
        endpoint('10.42.1.5', 'default/web-0', 'web-0', 'web')]})['names']
    assert 'web-0.other.default.svc.cluster.local' not in names
    assert names['10-42-1-5.other.default.svc.cluster.local'] == {'A': ['10.42.1.5']}


def test_a_headless_service_without_endpoints_exists_with_no_records():
    names = dns.records([service('db', cluster_ip=None)], {})['names']
    assert names['db.default.svc.cluster.local'] == {}


def test_the_zone_names_its_schema_and_is_deterministic_json():
    services = [service('web'), service('db', cluster_ip=None), KUBE_DNS]
    found = {'default/db': [endpoint('10.42.2.7', 'default/db-1'), endpoint('10.42.1.9', 'default/db-0')]}
    zone = dns.records(services, found)
    again = dns.records(list(reversed(services)), {'default/db': list(reversed(found['default/db']))})
    assert json.dumps(zone) == json.dumps(again)
    assert zone['names']['dns-version.cluster.local'] == {'TXT': ['1.1.0']}
    assert list(zone['names']) == sorted(zone['names'])
    assert zone['ttl'] == dns.TTL and zone['domain'] == 'cluster.local'


def test_another_cluster_domain_and_upper_case_names():
    names = dns.records([service('Web')], {}, domain='Example.Lab.')['names']
    assert names['web.default.svc.example.lab'] == {'A': ['10.43.0.20']}


def test_the_zone_file_lives_in_the_dns_folder_of_the_state_dir():
    assert dns.path('/var/lib/podnet') == '/var/lib/podnet/dns/records.json'


def test_an_external_name_service_is_a_cname_to_its_external_name():
    external = dict(service('mail', cluster_ip=None, ports=[]), type='ExternalName',
                    external_name='Mail.Example.COM.')
    names = dns.records([external], {})['names']
    assert names['mail.default.svc.cluster.local'] == {'CNAME': ['mail.example.com']}
