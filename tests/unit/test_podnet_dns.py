"""podnet-dns, the cluster DNS pod's server: started as a real process on
loopback, on a free port, against a zone file made by services/dns.py, and
asked with dnslib's client over UDP and TCP. Every process a test starts is
killed when it ends."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils.podnet.services import dns
from dnslib import QTYPE, RCODE, DNSRecord

SCRIPT = Path(__file__).resolve().parents[2] / 'roles' / 'pods' / 'files' / 'podnet-dns'
HOST = '127.0.0.1'
WAIT = 5  # bound on every single wait, in seconds

KUBE_DNS = {'namespace': 'kube-system', 'name': 'kube-dns', 'type': 'ClusterIP', 'cluster_ip': '10.43.0.10',
            'selector': {'k8s-app': 'kube-dns'}, 'affinity_timeout': None, 'external_local': False,
            'publish_not_ready': False,
            'ports': [{'name': 'dns', 'protocol': 'UDP', 'port': 53, 'target_port': 53, 'node_port': None},
                      {'name': 'dns-tcp', 'protocol': 'TCP', 'port': 53, 'target_port': 53, 'node_port': None}]}
WEB = dict(KUBE_DNS, namespace='shop', name='web', cluster_ip=None, selector={'app': 'web'},
           ports=[{'name': 'http', 'protocol': 'TCP', 'port': 80, 'target_port': 8080, 'node_port': None}])
MAIL = dict(KUBE_DNS, namespace='shop', name='mail', type='ExternalName', cluster_ip=None,
            external_name='smtp.example.com', ports=[])
ALIAS = dict(MAIL, name='dns-alias', external_name='kube-dns.kube-system.svc.cluster.local')
ENDPOINTS = {'shop/web': [{'ip': '10.42.%d.5' % i, 'pod': 'shop/web-%d' % i, 'hostname': 'web-%d' % i,
                           'subdomain': 'web', 'ports': {'http': 8080}} for i in (0, 1)]}


def write_zone(path, services, endpoints):
    """As the services module writes it: a new file renamed over the old."""
    partial = str(path) + '.new'
    Path(partial).write_text(json.dumps(dns.records(services, endpoints)))
    os.replace(partial, path)


@pytest.fixture
def zone(tmp_path):
    path = tmp_path / 'records.json'
    write_zone(path, [KUBE_DNS, WEB, MAIL, ALIAS], ENDPOINTS)
    return path


@pytest.fixture
def server(zone):
    """The server's port, serving zone."""
    proc = subprocess.Popen([sys.executable, str(SCRIPT), '--zone', str(zone), '--address', HOST, '--port', '0'],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r'port (\d+) \(UDP, TCP\)', line)
        assert found, line
        yield int(found.group(1))
    finally:
        proc.kill()
        proc.wait(WAIT)
        proc.stdout.close()


def ask(port, name, qtype='A', tcp=False):
    reply = DNSRecord.question(name, qtype).send(HOST, port, tcp=tcp, timeout=WAIT)
    return DNSRecord.parse(reply)


def answers(reply):
    return sorted(str(rr.rdata) for rr in reply.rr)


@pytest.mark.parametrize('tcp', [False, True], ids=['udp', 'tcp'])
def test_a_service_name_resolves_to_its_cluster_ip(server, tcp):
    reply = ask(server, 'kube-dns.kube-system.svc.cluster.local', tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert answers(reply) == ['10.43.0.10']
    assert reply.rr[0].ttl == dns.TTL


def test_names_are_case_insensitive(server):
    assert answers(ask(server, 'KUBE-DNS.Kube-System.svc.Cluster.Local.')) == ['10.43.0.10']


def test_headless_statefulset_srv_and_ptr_records(server):
    assert answers(ask(server, 'web.shop.svc.cluster.local')) == ['10.42.0.5', '10.42.1.5']
    assert answers(ask(server, 'web-1.web.shop.svc.cluster.local')) == ['10.42.1.5']
    srv = ask(server, '_http._tcp.web.shop.svc.cluster.local', 'SRV')
    assert answers(srv) == ['0 50 8080 web-0.web.shop.svc.cluster.local.',
                            '0 50 8080 web-1.web.shop.svc.cluster.local.']
    assert sorted(str(rr.rdata) for rr in srv.ar) == ['10.42.0.5', '10.42.1.5']  # the targets' addresses
    assert answers(ask(server, '10.0.43.10.in-addr.arpa', 'PTR')) == ['kube-dns.kube-system.svc.cluster.local.']


def test_an_unknown_name_is_nxdomain_with_the_zones_soa(server):
    reply = ask(server, 'nothing.default.svc.cluster.local')
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.rr == []
    assert [rr.rtype for rr in reply.auth] == [QTYPE.SOA]


def test_a_name_that_exists_without_the_type_asked_is_an_empty_answer(server):
    for name, qtype in (('kube-dns.kube-system.svc.cluster.local', 'AAAA'),
                        ('shop.svc.cluster.local', 'A')):  # a name with names below it
        reply = ask(server, name, qtype)
        assert (reply.header.rcode, reply.rr) == (RCODE.NOERROR, []), name


def test_a_name_outside_the_cluster_is_refused_there_is_no_upstream(server):
    for name in ('example.com', 'cluster.local.example.com', '8.8.8.8.in-addr.arpa'):
        reply = ask(server, name, 'PTR' if name.endswith('arpa') else 'A')
        assert reply.header.rcode == RCODE.REFUSED and reply.header.aa == 0, name


def test_a_replaced_zone_file_is_read_again(server, zone):
    assert ask(server, 'api.shop.svc.cluster.local').header.rcode == RCODE.NXDOMAIN
    write_zone(zone, [KUBE_DNS, WEB, dict(KUBE_DNS, namespace='shop', name='api', cluster_ip='10.43.7.7')],
               ENDPOINTS)
    assert answers(ask(server, 'api.shop.svc.cluster.local')) == ['10.43.7.7']


def test_without_a_zone_file_it_fails_and_recovers_when_one_comes(server, zone):
    os.unlink(zone)
    assert ask(server, 'kube-dns.kube-system.svc.cluster.local').header.rcode == RCODE.SERVFAIL
    write_zone(zone, [KUBE_DNS], {})
    assert answers(ask(server, 'kube-dns.kube-system.svc.cluster.local')) == ['10.43.0.10']


def test_a_broken_zone_file_keeps_the_last_good_zone(server, zone):
    assert answers(ask(server, 'kube-dns.kube-system.svc.cluster.local')) == ['10.43.0.10']
    zone.write_text('{"half a')
    time.sleep(0.01)  # another mtime, whatever the filesystem's clock granularity
    assert answers(ask(server, 'kube-dns.kube-system.svc.cluster.local')) == ['10.43.0.10']


def test_sigterm_ends_it_at_once(zone):
    proc = subprocess.Popen([sys.executable, str(SCRIPT), '--zone', str(zone), '--address', HOST, '--port', '0'],
                            stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        proc.terminate()
        assert proc.wait(WAIT) == 0
    finally:
        proc.kill()
        proc.wait(WAIT)
        proc.stdout.close()


def test_an_external_name_is_a_cname_and_a_target_of_ours_is_answered_too(server):
    """As CoreDNS: the CNAME for any type asked; its target's records when
    the cluster zone holds them (else the client's resolver asks for the
    target, which this server refuses: there is no upstream)."""
    reply = ask(server, 'mail.shop.svc.cluster.local')
    assert reply.header.rcode == RCODE.NOERROR
    assert [(QTYPE[rr.rtype], str(rr.rdata)) for rr in reply.rr] == [('CNAME', 'smtp.example.com.')]
    reply = ask(server, 'dns-alias.shop.svc.cluster.local')
    assert [(QTYPE[rr.rtype], str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [
        ('CNAME', 'dns-alias.shop.svc.cluster.local.', 'kube-dns.kube-system.svc.cluster.local.'),
        ('A', 'kube-dns.kube-system.svc.cluster.local.', '10.43.0.10')]
    assert answers(ask(server, 'mail.shop.svc.cluster.local', 'CNAME')) == ['smtp.example.com.']
