"""playbooks/explain.yml to a Service (issue 23, item 5), on the 3-node lab
with manifests/services: the DNAT hop read from the source node's table,
the path on to the endpoint it follows, the probe to the ClusterIP and the
endpoint the kernel chose; a Service without endpoints stops at the DNAT
hop and the probe is refused; `guarded`'s policy denies the seed's netexec
pods after DNAT; a bad Service or port fails before any probe. From the
outside host: a NodePort with externalTrafficPolicy Cluster is delivered,
masqueraded; with Local a node with an endpoint keeps the client's address,
one without drops it; a LoadBalancer port on a node's address."""
import json

import pytest
from integration.conftest import playbook, running_lab
from integration.test_explain import explain, where

pytestmark = pytest.mark.lab
MANIFESTS = '{"podnet_manifests": ["manifests/seed", "manifests/services"]}'
CLIENT = 'default/netexec-a'


@pytest.fixture(scope='module')
def services_lab():
    for lab in running_lab('lab', 'lab'):
        playbook(lab.inventory, 'playbooks/site.yml', '-e', MANIFESTS)
        yield lab


def served(lab):
    """The Services as node1 records them (podnet_facts `services`)."""
    text = lab.hosts['node1'].check_output('cat /var/lib/podnet/services.json')
    return json.loads(text)['services']


def dnat_hops(path):
    return [h for h in path['hops'] if h['at'] == 'ip podnet-services']


def test_a_pod_to_service_path_has_the_dnat_hop_and_a_delivered_probe(services_lab, tmp_path):
    echo = served(services_lab)['default/echo']
    endpoints = {'%(ip)s:%(port)d' % e: e['pod'] for e in echo['ports'][0]['endpoints']}
    client_node, client = where(services_lab)[CLIENT]
    path, done = explain(services_lab, tmp_path, CLIENT, 'svc/default/echo')
    first, choice, follows = dnat_hops(path)
    assert first['says'] == 'service-ips: %s . tcp . 80 : goto svc-default/echo/tcp/80 (Service default/echo)' % (
        echo['cluster_ip'])
    assert choice['says'].startswith('chain svc-default/echo/tcp/80: numgen random mod 3, 1/3 each, over 3 '
                                     'endpoints: ')
    followed = sorted(endpoints.items(), key=lambda item: item[1])[0]
    assert follows['says'].startswith('chain ep-default/echo/tcp/80__%s: dnat to %s, %s' % (
        followed[0].replace(':', '/'), followed[0], followed[1]))
    ats = [h['at'] for h in path['hops']]
    assert ats[:3] == ['%s eth0' % CLIENT] * 3 and ats[3] == '%s %s' % (client_node, client['veth'])
    assert ats[4:7] == ['ip podnet-services'] * 3 and ats[7] == '%s route' % client_node
    assert ats[-4:] == ['NetworkPolicy ingress', '%s eth0' % followed[1], '%s conntrack' % client_node, 'probe']
    assert path['stops_at'] is None and path['agrees'], done.stdout
    probe = path['hops'][-1]['says']
    assert probe.startswith('svc default/echo %s:80: connected; the kernel chose ' % echo['cluster_ip'])
    assert any('%s (%s)' % (pod, address) in probe for address, pod in endpoints.items()), probe
    assert probe.endswith('which saw source %s' % client['ip']), 'NAT between a pod and an endpoint'
    assert 'ip podnet-services' in done.stdout


def test_a_cluster_ip_and_a_udp_port_by_name(services_lab, tmp_path):
    echo = served(services_lab)['default/echo']
    path, _ = explain(services_lab, tmp_path, CLIENT, echo['cluster_ip'], '-e', 'dport=udp', '-e', 'protocol=UDP')
    assert dnat_hops(path)[0]['says'].startswith('service-ips: %s . udp . 81 : goto svc-default/echo/udp/81' % (
        echo['cluster_ip']))
    assert path['agrees'] and ': answered; the kernel chose ' in path['hops'][-1]['says']


def test_a_service_without_endpoints_stops_at_the_dnat_hop_and_the_probe_is_refused(services_lab, tmp_path):
    path, _ = explain(services_lab, tmp_path, CLIENT, 'svc/default/nothing')
    assert path['stops_at']['at'] == 'ip podnet-services'
    assert path['stops_at']['problem'] == 'no endpoints: rejected (ICMP port unreachable)'
    assert path['hops'][-2] == path['stops_at']
    assert path['agrees'] and path['hops'][-1]['says'].endswith(':80: refused')


def test_policy_judges_the_endpoint_after_dnat(services_lab, tmp_path):
    path, _ = explain(services_lab, tmp_path, CLIENT, 'svc/default/guarded')
    assert len(dnat_hops(path)) == 3 and 'goto its one endpoint: default/guarded-' in dnat_hops(path)[1]['says']
    assert path['stops_at']['at'] == 'NetworkPolicy ingress'
    assert 'guarded-friends-only' in path['stops_at']['problem']
    assert path['agrees'] and path['verdict']['allowed'] is False
    assert path['hops'][-1]['says'].split('; ')[0].endswith(':80: timeout')


@pytest.mark.parametrize('args, message', [
    (('to=svc/default/nope',), 'to: no Service default/nope in the cluster'),
    (('to=svc/default/echo', 'dport=82'), "port: Service default/echo has no TCP port '82'"),
    (('to=svc/default/echo-headless',), 'to: Service default/echo-headless is headless'),
    (('to=svc/default/echo', 'endpoint=default/netexec-b'), 'endpoint: default/netexec-b is no endpoint')])
def test_a_bad_service_request_is_refused_before_any_probe(services_lab, args, message):
    extra = [x for arg in ('from=' + CLIENT,) + args for x in ('-e', arg)]
    done = playbook(services_lab.inventory, 'playbooks/explain.yml', *extra, check=False)
    assert done.returncode != 0 and message in done.stdout, done.stdout
    assert "Read this node's half" not in done.stdout


def test_probe_yml_gives_each_service_port_a_column_judged_at_its_endpoints(services_lab, tmp_path):
    out = tmp_path / 'probe.json'
    done = playbook(services_lab.inventory, 'playbooks/probe.yml', '-e', 'probe_ports=8080',
                    '-e', 'probe_protocols=TCP', '-e', 'probe_services=default/echo,default/guarded,default/nothing',
                    '-e', 'probe_expect=model', '-e', 'probe_output=%s' % out)
    tcp80 = next(m for m in json.loads(out.read_text()) if (m['protocol'], m['port']) == ('TCP', 80))
    assert tcp80['targets'] == ['svc default/echo:80', 'svc default/guarded:80', 'svc default/nothing:80']
    row = tcp80['allowed'][CLIENT]
    assert (row['svc default/echo:80'], row['svc default/guarded:80'], row['svc default/nothing:80']) == \
        (True, False, False)
    friends = [k for k in tcp80['allowed'] if k.startswith('default/echo-')]
    assert len(friends) == 3 and all(tcp80['allowed'][k]['svc default/guarded:80'] for k in friends)
    assert any(m['port'] == 81 and m['protocol'] == 'UDP' for m in json.loads(out.read_text()))
    assert 'svc columns: the policy model judges the endpoints after DNAT' in done.stdout
    assert 'disagree' not in done.stdout


def test_probe_yml_refuses_an_unknown_service_before_any_probe(services_lab):
    done = playbook(services_lab.inventory, 'playbooks/probe.yml', '-e', 'probe_services=default/nope', check=False)
    assert done.returncode != 0 and 'probe_services: no Service default/nope in the cluster' in done.stdout


# -- from the outside host to a NodePort or LoadBalancer port ---------------------------
OUTSIDE_IP = '203.0.113.10'


def dnat_says(path):
    return [h['says'] for h in path['hops'] if h['at'] == 'ip podnet-services']


def test_a_node_port_with_policy_cluster_is_delivered_masqueraded(services_lab, tmp_path):
    path, done = explain(services_lab, tmp_path, 'outside', 'node1:30080')
    says = dnat_says(path)
    assert says[0].startswith('nat prerouting, chain services: service-nodeports: tcp . 30080 : goto '
                              'ext-default/echo-nodeport/tcp/80'), says
    assert 'externalTrafficPolicy Cluster: jump mark-for-masquerade' in says[1]
    assert any('masquerade fully-random' in s for s in says)
    ats = [h['at'] for h in path['hops']]
    assert ats[0] == 'outside eth0' and ats[-2:] == ['node1 conntrack', 'probe'], ats
    assert path['stops_at'] is None and path['agrees'], done.stdout
    probe = path['hops'][-1]['says']
    assert probe.startswith('svc default/echo-nodeport 10.11.1.11:30080: connected; the kernel chose '), probe
    assert 'which saw source %s' % OUTSIDE_IP not in probe, 'Cluster masquerades'


def test_a_cluster_node_port_reads_the_endpoint_s_node_with_the_masqueraded_source(services_lab, tmp_path):
    """The endpoint on another node gets the packet from node1's flannel.1
    address (vxlan): its node's hops, its policy verdict, the reverse NAT
    and the probe all name that address, never the outside host's."""
    endpoints = served(services_lab)['default/echo-nodeport']['ports'][0]['endpoints']
    far = min((e for e in endpoints if e['node'] != 'node1'), key=lambda e: e['pod'])
    vtep = services_lab.hosts['node1'].check_output('ip -4 -o addr show flannel.1').split()[3].split('/')[0]
    path, done = explain(services_lab, tmp_path, 'outside', 'node1:30080', '-e', 'endpoint=' + far['pod'])
    says = {h['at']: h['says'] for h in path['hops']}
    assert says['%s route' % far['node']].startswith('route lookup %s from %s iif flannel.1' % (far['ip'], vtep))
    assert any(s.startswith('nat postrouting, chain masquerading: mark 0x4000 set: masquerade fully-random to %s, '
                            'flannel.1\'s address: the endpoint sees %s, not %s' % (vtep, vtep, OUTSIDE_IP))
               for s in dnat_says(path)), dnat_says(path)
    assert says['NetworkPolicy ingress'].startswith("from %s, node1's masquerade: ingress of %s" % (vtep, far['pod']))
    assert says['node1 conntrack'].startswith('the reply %s:%d -> %s reaches the outside host as 10.11.1.11:30080 '
                                              '-> %s' % (far['ip'], far['port'], vtep, OUTSIDE_IP))
    assert path['stops_at'] is None and path['agrees'], done.stdout  # the probe saw what the path predicts
    assert 'which saw source %s' % OUTSIDE_IP not in says['probe'], says['probe']


def test_policy_local_on_a_node_with_an_endpoint_keeps_the_client(services_lab, tmp_path):
    local = {e['node'] for e in served(services_lab)['default/echo-local']['ports'][0]['endpoints']}
    path, done = explain(services_lab, tmp_path, 'outside', 'svc/default/echo-local', '-e', 'via=' + min(local))
    assert path['stops_at'] is None and path['agrees'], done.stdout
    assert any('not masqueraded: the endpoint sees the client %s' % OUTSIDE_IP in s for s in dnat_says(path))
    assert path['hops'][-1]['says'].endswith('which saw source %s' % OUTSIDE_IP), path['hops'][-1]


# echo runs on every node; db's two pods leave one node of three without.
DB_LOCAL = """apiVersion: v1
kind: Service
metadata: {name: db-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: db}
  ports: [{port: 5432, targetPort: pg, nodePort: 30090}]
"""


def test_policy_local_on_a_node_without_an_endpoint_stops_dropped(services_lab, tmp_path):
    manifest = tmp_path / 'db-local.yaml'
    manifest.write_text(DB_LOCAL)
    playbook(services_lab.inventory, 'playbooks/site.yml', '-e', json.dumps(
        {'podnet_manifests': ['manifests/seed', 'manifests/services', str(manifest)]}))
    local = {e['node'] for e in served(services_lab)['default/db-local']['ports'][0]['endpoints']}
    without = sorted(set(services_lab.hosts) - local)
    assert without, 'db has two pods on three nodes'
    path, done = explain(services_lab, tmp_path, 'outside', '%s:30090' % without[0])
    assert path['stops_at']['problem'] == ('externalTrafficPolicy Local and no endpoint of default/db-local '
                                           'on this node: dropped'), done.stdout
    assert path['agrees'] and 'timeout' in path['hops'][-1]['says'], path['hops'][-1]


def test_a_load_balancer_port_is_explained_on_a_node_s_address(services_lab, tmp_path):
    path, done = explain(services_lab, tmp_path, 'outside', 'node2:8088')
    assert dnat_says(path)[0].startswith('nat prerouting, chain services: service-ips: 10.11.1.12 . tcp . 8088')
    assert path['stops_at'] is None and path['agrees'], done.stdout


@pytest.mark.parametrize('to, extra, message', [
    ('svc/default/echo-nodeport', (), 'via: missing: give -e via=<node>'),
    ('svc/default/echo', ('-e', 'via=node1'), 'to: Service default/echo is ClusterIP'),
    ('node9:30080', (), 'to: node node9 is not in the inventory'),
])
def test_a_bad_outside_request_fails_before_any_probe(services_lab, to, extra, message):
    done = playbook(services_lab.inventory, 'playbooks/explain.yml', '-e', 'from=outside', '-e', 'to=' + to,
                    *extra, check=False)
    assert done.returncode != 0 and message in done.stdout, done.stdout
    assert "Read this node's half" not in done.stdout
