"""A pod's dnsPolicy, dnsConfig and subdomain, read and refused as the API
server does (plan/poddns.py), through a manifest."""
import pytest
from ansible.module_utils.podnet.plan import poddns
from test_podspec import load, refusal, spec


def test_the_default_is_cluster_first_with_no_config(tmp_path):
    assert load(tmp_path, lambda d: None).dns == poddns.PodDns('ClusterFirst')


def test_dns_config_and_subdomain_are_read_in_order(tmp_path):
    found = load(tmp_path, spec(dnsPolicy='None', subdomain='web', dnsConfig={
        'nameservers': ['192.0.2.53', '2001:db8::53'], 'searches': ['corp.example.', 'example'],
        'options': [{'name': 'ndots', 'value': '2'}, {'name': 'edns0'}]})).dns
    assert found == poddns.PodDns('None', ('192.0.2.53', '2001:db8::53'), ('corp.example.', 'example'),
                                  (('ndots', '2'), ('edns0', None)), 'web')
    assert found.for_node('10.43.0.10', 'cluster.local') == {
        'policy': 'None', 'nameservers': ['192.0.2.53', '2001:db8::53'], 'searches': ['corp.example.', 'example'],
        'options': [['ndots', '2'], ['edns0', None]], 'cluster_dns': '10.43.0.10', 'domain': 'cluster.local'}


@pytest.mark.parametrize('fields, words', [
    ({'dnsPolicy': 'None', 'dnsConfig': {'searches': ['a']}},
     'spec.dnsConfig.nameservers: must provide at least one DNS nameserver when dnsPolicy is None'),
    ({'dnsConfig': {'nameservers': ['192.0.2.%d' % i for i in range(4)]}},
     'spec.dnsConfig.nameservers: must not have more than 3 nameservers'),
    ({'dnsConfig': {'nameservers': ['dns.example']}},
     "spec.dnsConfig.nameservers[0]: 'dns.example' must be a valid IP address"),
    ({'dnsConfig': {'searches': ['s%d' % i for i in range(33)]}},
     'spec.dnsConfig.searches: must not have more than 32 search paths'),
    ({'dnsConfig': {'searches': ['a' * 60 + '.' + 'b' * 60 + '.' + str(i) for i in range(17)]}},
     'spec.dnsConfig.searches: must not have more than 2048 characters'),
    ({'dnsConfig': {'searches': ['Corp_Example']}}, "spec.dnsConfig.searches[0]: 'Corp_Example' is not a DNS-1123"),
    ({'dnsConfig': {'options': [{'value': '2'}]}}, 'spec.dnsConfig.options[0].name: must not be empty'),
    ({'dnsConfig': {'options': [{'name': 'ndots', 'valeu': '2'}]}}, 'spec.dnsConfig.options[0].valeu: unknown'),
    ({'dnsConfig': {'nameserver': ['192.0.2.1']}}, 'spec.dnsConfig.nameserver: unknown field'),
    ({'subdomain': 'a.b'}, "spec.subdomain: 'a.b' is not a DNS-1123 label"),
])
def test_bad_dns_fields_are_refused_by_name(tmp_path, fields, words):
    assert words in refusal(tmp_path, spec(**fields))
