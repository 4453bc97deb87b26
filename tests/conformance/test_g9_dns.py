"""G9: cluster DNS. From every pod, through 10.43.0.10 and the pod's own
resolv.conf (search path, ndots:5), Service names resolve: kube-dns by its
full name and by a partial one, a Service by its short name in its own
namespace, headless Services to their ready pods, StatefulSet pods by
name, named ports by SRV; an unknown name is NXDOMAIN; and an egress
NetworkPolicy that does not allow port 53 takes names away.

What the cluster's Services are is read from the zone a node keeps
(<state_dir>/dns/records.json); answers are held against the pods' own
records and files, and kube-dns's fixed address and ports."""
import json
import os
import tempfile

import pytest
import yaml
from conformance.conftest import STATE_DIR
from conformance.netpol_model import ansible_playbook

CLUSTER_DNS = '10.43.0.10'
DOMAIN = 'cluster.local'
KUBE_DNS = 'kube-dns.kube-system.svc.' + DOMAIN
ZONE = STATE_DIR + '/dns/records.json'
POD_PYTHON = '/opt/podnet/venv/bin/python'  # roles/common's podnet_pod_python, unless the inventory says
# A query with dnslib, which the pods' Python has (requirements-node.txt):
# the rcode's name, then each answer's data, one a line.
ASK = ('import sys; from dnslib import DNSRecord, RCODE; '
       'r = DNSRecord.parse(DNSRecord.question(sys.argv[1], sys.argv[2]).send(sys.argv[3], 53, timeout=3)); '
       'print(RCODE.get(r.header.rcode)); [print(x.rdata) for x in r.rr]')
G9_NAMESPACE = 'g9-dns'


def container(pod):
    return next(iter(pod.containers))


def resolve(pod, name):
    """The IPv4 addresses the pod's resolver (glibc, its resolv.conf) gives name."""
    answer = pod.run_in(container(pod), 'getent ahostsv4 %s', name)
    return sorted({line.split()[0] for line in answer.stdout.splitlines()}) if answer.rc == 0 else []


def sent(pod, python, name, qtype='A'):
    """The command's result of one question sent from inside the pod to the cluster DNS."""
    return pod.run_in(container(pod), '%s -c %s %s %s %s', python, ASK, name, qtype, CLUSTER_DNS)


def ask(pod, python, name, qtype='A'):
    """(rcode, [answers]) of one question sent from inside the pod to the cluster DNS."""
    out = sent(pod, python, name, qtype)
    assert out.rc == 0, (pod, name, out.stderr)
    rcode, *answers = out.stdout.split('\n')
    return rcode, sorted(a for a in answers if a)


def cluster_first(pods):
    """The pods whose resolv.conf names the cluster DNS (not the DNS pod's own, dnsPolicy Default)."""
    return {k: p for k, p in pods.items() if not k.startswith('kube-system/coredns-')}


@pytest.fixture(scope='module')
def python(node_vars):
    return next(iter(node_vars.values())).get('podnet_pod_python') or POD_PYTHON


@pytest.fixture(scope='module')
def zone(nodes):
    """The zone the nodes keep (the same on each), as services/dns.py writes it."""
    texts = {name: host.run('cat %s', ZONE) for name, host in nodes.items()}
    missing = [name for name, text in texts.items() if text.rc != 0]
    if missing:
        pytest.fail('no cluster DNS zone on %s (%s): the services role did not run' % (', '.join(missing), ZONE))
    found = {name: json.loads(text.stdout) for name, text in texts.items()}
    assert len({json.dumps(z, sort_keys=True) for z in found.values()}) == 1, 'the nodes keep different zones'
    return next(iter(found.values()))


def names_with(zone, test):
    return sorted(name for name, entry in zone['names'].items() if test(name, entry))


def test_every_pod_s_resolv_conf_is_the_kubelet_s(pods, sample):
    for pod in sample.pods(cluster_first(pods)):
        text = pod.run_in(container(pod), 'cat /etc/resolv.conf').stdout
        namespace = pod.key.split('/')[0]
        search = 'search %s.svc.%s svc.%s %s' % (namespace, DOMAIN, DOMAIN, DOMAIN)
        assert text.splitlines()[0].startswith(search), (pod, text)
        assert 'nameserver %s' % CLUSTER_DNS in text.splitlines() and 'options ndots:5' in text, (pod, text)


def test_every_pod_s_hosts_names_its_own_address(pods, sample):
    for pod in sample.pods(pods):
        text = pod.run_in(container(pod), 'cat /etc/hosts').stdout
        assert '127.0.0.1\tlocalhost' in text, (pod, text)
        assert any(line.split('\t')[0] == pod.ip for line in text.splitlines()), (pod, text)


def test_every_pod_resolves_kube_dns_by_full_and_partial_name(pods, sample):
    """kube-dns.kube-system has one dot, under ndots:5: the search path finds it."""
    for pod in sample.pods(cluster_first(pods)):
        assert resolve(pod, KUBE_DNS) == [CLUSTER_DNS], pod
        assert resolve(pod, 'kube-dns.kube-system') == [CLUSTER_DNS], pod


def test_a_service_resolves_by_short_name_from_its_own_namespace(pods, zone):
    services = {}  # namespace -> (a Service's name, its addresses)
    for name in names_with(zone, lambda n, e: n.count('.') == 4 and e.get('A') and n.endswith('.svc.' + DOMAIN)):
        services.setdefault(name.split('.')[1], (name.split('.')[0], zone['names'][name]['A']))
    tried = 0
    for pod in cluster_first(pods).values():
        namespace = pod.key.split('/')[0]
        if namespace in services:
            short, addresses = services[namespace]
            assert resolve(pod, short) == sorted(addresses), (pod, short)
            tried += 1
    if not tried:
        pytest.skip('no pod shares a namespace with a Service that has addresses')


def test_a_headless_service_resolves_to_running_pods(pods, zone, python):
    headless = names_with(zone, lambda n, e: n.count('.') == 4 and n.endswith('.svc.' + DOMAIN)
                          and not any(a.startswith('10.43.') for a in e.get('A', [])))
    if not headless:
        pytest.skip('the cluster has no headless Service (clusterIP: None)')
    client = next(iter(cluster_first(pods).values()))
    running = {p.ip for p in pods.values()}
    for name in headless:
        rcode, answers = ask(client, python, name)
        assert rcode == 'NOERROR' and set(answers) <= running, (name, answers)
        assert answers == zone['names'][name].get('A', []), name


def test_statefulset_pods_resolve_by_name_to_their_own_address(pods, zone):
    """A pod with a subdomain names its FQDN in its /etc/hosts; where that
    subdomain is a headless Service, every pod resolves the FQDN to it."""
    client = next(iter(cluster_first(pods).values()))
    tried = 0
    for pod in pods.values():
        hosts = pod.run_in(container(pod), 'cat /etc/hosts').stdout
        fqdns = [line.split('\t')[1] for line in hosts.splitlines()
                 if line.startswith(pod.ip + '\t') and '.svc.' in line]
        if fqdns and fqdns[0].split('.', 1)[1] in zone['names']:
            assert resolve(client, fqdns[0]) == [pod.ip], (pod, fqdns[0])
            tried += 1
    if not tried:
        pytest.skip('no pod has a subdomain naming a headless Service (a StatefulSet with its serviceName)')


def test_a_named_port_has_an_srv_record(pods, python):
    client = next(iter(cluster_first(pods).values()))
    for port, proto in (('dns', 'udp'), ('dns-tcp', 'tcp')):
        rcode, answers = ask(client, python, '_%s._%s.%s' % (port, proto, KUBE_DNS), 'SRV')
        assert rcode == 'NOERROR' and [a.split()[2:] for a in answers] == [['53', KUBE_DNS + '.']], answers


def test_an_unknown_name_is_nxdomain(pods, python):
    client = next(iter(cluster_first(pods).values()))
    assert ask(client, python, 'no-such-service.default.svc.' + DOMAIN) == ('NXDOMAIN', [])
    assert resolve(client, 'no-such-service') == []


# -- NetworkPolicy applies to DNS ------------------------------------------
AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.47'


def g9_objects():
    """Two pods in a namespace of G9's own, and a policy that lets one of
    them send only to TCP 80."""
    pods = [{'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': role, 'namespace': G9_NAMESPACE,
                                                              'labels': {'role': role}},
             'spec': {'containers': [{'name': 'pause', 'image': AGNHOST, 'args': ['pause']}]}}
            for role in ('open', 'isolated')]
    policy = {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
              'metadata': {'name': 'web-only', 'namespace': G9_NAMESPACE},
              'spec': {'podSelector': {'matchLabels': {'role': 'isolated'}}, 'policyTypes': ['Egress'],
                       'egress': [{'ports': [{'port': 80, 'protocol': 'TCP'}]}]}}
    return [{'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': G9_NAMESPACE}}] + pods + [policy]


@pytest.fixture
def isolated_pods(inventory, node_vars, nodes):
    """The cluster's own manifests plus G9's objects, converged; the
    cluster as it was, converged again after."""
    from conformance.conftest import read_pods
    manifests = next(iter(node_vars.values())).get('podnet_manifests') or ['manifests/seed']
    with tempfile.TemporaryDirectory(prefix='podnet-g9-') as folder:
        path = os.path.join(folder, 'g9.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump_all(g9_objects(), f)
        try:
            ansible_playbook(inventory, 'playbooks/site.yml', '-e',
                             json.dumps({'podnet_manifests': manifests + [path]}))
            found = {p.key: p for name, host in nodes.items() for p in read_pods(name, host)}
            yield found['%s/open' % G9_NAMESPACE], found['%s/isolated' % G9_NAMESPACE]
        finally:
            ansible_playbook(inventory, 'playbooks/site.yml', '-e', json.dumps({'podnet_manifests': manifests}))


def test_an_egress_policy_without_port_53_takes_names_away(isolated_pods, python):
    """The isolated pod's question is dropped (a time-out, as G5's denials
    are); its neighbour without the policy still gets its answer."""
    open_pod, isolated = isolated_pods
    assert resolve(open_pod, KUBE_DNS) == [CLUSTER_DNS]
    denied = sent(isolated, python, KUBE_DNS)
    assert denied.rc != 0 and 'timed out' in (denied.stderr + denied.stdout).lower(), denied.stderr
