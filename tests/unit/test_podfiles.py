"""A pod's /etc/resolv.conf and /etc/hosts as the kubelet writes them
(pods/podfiles.py), for each dnsPolicy, with and without cluster DNS."""
import os

from ansible.module_utils.podnet.pods import podfiles

NODE = ('# written by the node\n'
        'nameserver 192.0.2.53\n'
        'nameserver 192.0.2.54\n'
        'search lab.example. corp.example\n'
        'options timeout:2 edns0\n')


def dns(policy='ClusterFirst', cluster_dns='10.43.0.10', nameservers=(), searches=(), options=()):
    return {'policy': policy, 'nameservers': list(nameservers), 'searches': list(searches),
            'options': [list(o) for o in options], 'cluster_dns': cluster_dns, 'domain': 'cluster.local'}


def test_cluster_first_names_the_cluster_dns_its_search_path_and_ndots_5():
    assert podfiles.resolv_conf(dns(), 'shop', NODE) == (
        'search shop.svc.cluster.local svc.cluster.local cluster.local lab.example corp.example\n'
        'nameserver 10.43.0.10\n'
        'options ndots:5\n')
    assert podfiles.resolv_conf(dns(), 'default', '') == (
        'search default.svc.cluster.local svc.cluster.local cluster.local\n'
        'nameserver 10.43.0.10\n'
        'options ndots:5\n')


def test_cluster_first_with_host_net_is_cluster_first():
    assert podfiles.resolv_conf(dns('ClusterFirstWithHostNet'), 'shop', NODE) == \
        podfiles.resolv_conf(dns(), 'shop', NODE)


def test_default_is_the_node_s_resolv_conf_and_so_is_cluster_first_without_cluster_dns():
    expected = ('search lab.example corp.example\n'
                'nameserver 192.0.2.53\nnameserver 192.0.2.54\n'
                'options timeout:2 edns0\n')
    assert podfiles.resolv_conf(dns('Default'), 'shop', NODE) == expected
    assert podfiles.resolv_conf(dns(cluster_dns=None), 'shop', NODE) == expected


def test_none_is_the_dns_config_alone():
    found = dns('None', nameservers=['192.0.2.1'], searches=['corp.example'], options=[('ndots', '2'), ('edns0', None)])
    assert podfiles.resolv_conf(found, 'shop', NODE) == (
        'search corp.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n')


def test_a_dns_config_merges_into_cluster_first_as_the_kubelet_merges_it():
    found = dns(nameservers=['192.0.2.1', '10.43.0.10'], searches=['corp.example', 'svc.cluster.local'],
                options=[('ndots', '2'), ('single-request', None)])
    assert podfiles.pod_dns(found, 'shop', '') == (
        ['10.43.0.10', '192.0.2.1'],
        ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'],
        [('ndots', '2'), ('single-request', None)])


def test_the_node_s_resolv_conf_is_read_as_the_kubelet_reads_it():
    text = '; comment\nsearch old.example\nsearch a.example. .\noptions ndots:1\noptions ndots:3 rotate\nnameserver\n'
    assert podfiles.parse_resolv_conf(text) == ([], ['a.example'], [('ndots', '3'), ('rotate', None)])


def test_limits_cut_nameservers_and_search_domains():
    node = ''.join('nameserver 192.0.2.%d\n' % i for i in range(5)) + 'search ' + ' '.join(
        '%s.example' % ('x' * 60 + str(i)) for i in range(40)) + '\n'
    nameservers, searches, _ = podfiles.pod_dns(dns('Default'), 'shop', node)
    assert nameservers == ['192.0.2.0', '192.0.2.1', '192.0.2.2']
    assert len(searches) == 29 and len(' '.join(searches)) <= podfiles.MAX_SEARCH_CHARS
    _, searches, _ = podfiles.pod_dns(dns('Default'), 'shop', 'search ' + ' '.join('s%d' % i for i in range(40)))
    assert searches == ['s%d' % i for i in range(32)]


def test_hosts_has_localhost_then_the_pod_s_address_and_names():
    header = ('# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n'
              '::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n'
              'fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n')
    assert podfiles.hosts('web-abc', None, 'shop', '10.42.1.5', 'cluster.local') == header + '10.42.1.5\tweb-abc\n'
    assert podfiles.hosts('web-0', 'web', 'shop', '10.42.1.6', 'cluster.local') == (
        header + '10.42.1.6\tweb-0.web.shop.svc.cluster.local\tweb-0\n')


def test_write_puts_both_files_in_the_pod_folder_for_read_only_binds(tmp_path):
    node = tmp_path / 'resolv.conf'
    node.write_text(NODE)
    pod = {'namespace': 'shop', 'name': 'web-0', 'subdomain': 'web', 'dns': dns()}
    binds = podfiles.write(str(tmp_path / 'pod'), pod, '10.42.1.6', 'web-0', str(node))
    assert [target for _, target in binds] == ['/etc/resolv.conf', '/etc/hosts']
    for source, target in binds:
        assert source.startswith(str(tmp_path / 'pod' / '.etc') + '/')
        assert os.stat(source).st_mode & 0o777 == 0o644
    assert open(binds[0][0]).read().startswith('search shop.svc.cluster.local ')
    assert open(binds[1][0]).read().endswith('10.42.1.6\tweb-0.web.shop.svc.cluster.local\tweb-0\n')
    assert podfiles.write(str(tmp_path / 'pod'), pod, '10.42.1.6', 'web-0', str(tmp_path / 'none')) == binds
