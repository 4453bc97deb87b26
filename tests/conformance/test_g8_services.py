"""G8: Services. A ClusterIP (or NodePort, or LoadBalancer port) reaches the
ready endpoints its selector picks and spreads the load; ClientIP affinity
sticks; a pod reaching itself through its own Service works (hairpin); the
endpoint sees the client pod's own IP; externalTrafficPolicy Local keeps
the client's IP; a Service without endpoints rejects; NetworkPolicy judges
the endpoint after DNAT.

Runs on the cluster of manifests/services (the services molecule
scenario): the Deployment `echo` (agnhost netexec) behind a Service of each
kind, `guarded` behind a policy, and `nothing`, which selects no pod. The
Services' addresses are read from the nodes' own tables, as a user reads
them (`nft list map ip podnet-services service-ips`)."""
import re
import subprocess

import pytest

TRIES = 30  # a missed endpoint of 3 in 30 random picks: 3 x (2/3)^30, about 2e-5
CLUSTER_IP = re.compile(r'(\d+\.\d+\.\d+\.\d+) \. (tcp|udp) \. (\d+) : goto svc-([^/]+/[^/]+)/')
NODE_PORT = re.compile(r'(tcp|udp) \. (\d+) : goto ext-([^/]+/[^/]+)/')
NO_ENDPOINTS = re.compile(r'(\d+\.\d+\.\d+\.\d+) \. (tcp|udp) \. (\d+) : goto reject-chain')


def listed(host, name):
    return host.check_output('nft list map ip podnet-services %s', name)


@pytest.fixture(scope='module')
def vips(nodes):
    """{(service, protocol, port): ClusterIP} of the Services with endpoints."""
    text = listed(next(iter(nodes.values())), 'service-ips')
    found = {(svc, proto, int(port)): ip for ip, proto, port, svc in CLUSTER_IP.findall(text)}
    if ('default/echo', 'tcp', 80) not in found:
        pytest.fail('no Service default/echo with endpoints: converge manifests/services first')
    return found


@pytest.fixture(scope='module')
def echo(pods):
    found = [p for key, p in pods.items() if key.startswith('default/echo-')]
    assert len(found) == 3, 'the echo Deployment keeps 3 pods: %s' % found
    return found


@pytest.fixture(scope='module')
def clients(pods):
    """The seed's netexec pods: no endpoints of any Service here."""
    found = [p for key, p in sorted(pods.items()) if key.startswith('default/netexec-')]
    assert len(found) >= 2, 'need the seed netexec pods (manifests/seed/netexec.yaml)'
    return found


@pytest.fixture(scope='module')
def outside(node_vars):
    """Run a command on the lab's outside host (203.0.113.0/24), the way
    a client off the cluster reaches a NodePort or LoadBalancer."""
    lab = next(iter(node_vars.values())).get('podnet_lab') or {}
    if not (lab.get('outside') or {}).get('host_ip'):
        pytest.skip('this inventory declares no outside host (podnet_lab.outside.host_ip)')
    pid = _outside_pid(lab['name'])

    def run(command):
        return subprocess.run(['nsenter', '-t', pid, '-n', 'sh', '-c', command], capture_output=True,
                              text=True, timeout=60)
    return run


def _outside_pid(lab):
    found = subprocess.run(['pgrep', '-f', 'podnet-lab-init %s outside' % lab], capture_output=True, text=True)
    pids = found.stdout.split()
    assert pids, 'no outside host of lab %s runs on this machine' % lab
    return pids[0]


def answers(pod, url, tries=TRIES):
    """The bodies of `tries` requests from the pod, in one shell on its node."""
    out = pod.run("sh -c 'for i in $(seq %d); do curl -s -m 3 %s; echo; done'" % (tries, url))
    return [line for line in out.stdout.splitlines() if line]


def test_a_cluster_ip_reaches_every_endpoint_and_spreads_the_load(vips, echo, clients):
    vip = vips['default/echo', 'tcp', 80]
    for client in clients[:2]:
        seen = answers(client, 'http://%s/hostname' % vip)
        assert len(seen) == TRIES, (client, seen)
        assert set(seen) == {p.name for p in echo}, (client, sorted(set(seen)))


def test_the_endpoint_sees_the_client_pods_own_ip(vips, clients):
    vip = vips['default/echo', 'tcp', 80]
    for client in clients:
        seen = {line.rsplit(':', 1)[0] for line in answers(client, 'http://%s/clientip' % vip, 6)}
        assert seen == {client.ip}, (client, seen)


def test_a_udp_service_port_reaches_the_endpoints(vips, echo, clients):
    """agnhost's /dial sends the UDP request from the client pod itself."""
    vip = vips['default/echo', 'udp', 81]
    client = clients[0]
    url = "'http://127.0.0.1:8080/dial?request=hostname&protocol=udp&host=%s&port=81&tries=1'" % vip
    seen = set()
    for _ in range(TRIES):
        seen.update(re.findall(r'"responses":\["([^"]+)"\]', client.run('curl -s -m 5 %s' % url).stdout))
    assert seen == {p.name for p in echo}, seen


def test_client_ip_affinity_sticks(vips, clients):
    vip = vips['default/echo-sticky', 'tcp', 80]
    for client in clients[:2]:
        seen = answers(client, 'http://%s/hostname' % vip, 10)
        assert len(seen) == 10 and len(set(seen)) == 1, (client, seen)


def test_a_pod_reaches_itself_through_its_own_service(vips, echo):
    """Hairpin: the pod's own packet comes back to it through the bridge
    port it left by, masqueraded to its node's gateway so that the reply
    goes back through the node's conntrack."""
    vip = vips['default/echo', 'tcp', 80]
    for pod in echo:
        seen = answers(pod, 'http://%s/hostname' % vip)
        assert pod.name in seen and len(seen) == TRIES, (pod, seen)


def test_a_service_without_endpoints_rejects(nodes, clients):
    text = listed(next(iter(nodes.values())), 'no-endpoint-services')
    (vip, _, port), = [m for m in NO_ENDPOINTS.findall(text)]
    for client in clients:
        answer = client.run('curl -s -m 5 -o /dev/null -w %%{time_total} http://%s:%s/', vip, port)
        assert answer.rc == 7, (client, answer.rc, 'want connection refused (7), not a timeout (28)')
        assert float(answer.stdout) < 1, answer.stdout


def test_an_undeclared_port_of_a_cluster_ip_rejects_and_an_unallocated_address_drops(vips, clients):
    client = clients[0]
    assert client.run('curl -s -m 5 http://%s:9/', vips['default/echo', 'tcp', 80]).rc == 7
    taken = {ip for ip in vips.values()}
    unallocated = next('10.43.255.%d' % i for i in range(2, 250) if '10.43.255.%d' % i not in taken)
    assert client.run('curl -s -m 2 http://%s/', unallocated).rc == 28


def test_nodes_reach_cluster_ips(vips, nodes, echo):
    vip = vips['default/echo', 'tcp', 80]
    for name, host in nodes.items():
        answer = host.run('curl -s -m 5 http://%s/hostname', vip)
        assert answer.rc == 0 and answer.stdout in {p.name for p in echo}, (name, answer.stdout)


def node_ports(nodes):
    text = listed(next(iter(nodes.values())), 'service-nodeports')
    return {svc: int(port) for proto, port, svc in NODE_PORT.findall(text) if proto == 'tcp'}


def test_a_node_port_answers_from_the_outside_host_on_every_node_masqueraded(nodes, underlay, outside, echo):
    """externalTrafficPolicy Cluster: any node forwards to any endpoint, and
    the endpoint sees a node's address (masquerade), never the client's."""
    port = node_ports(nodes)['default/echo-nodeport']
    for node, address in underlay.items():
        answer = outside('curl -s -m 5 http://%s:%d/clientip' % (address, port))
        assert answer.returncode == 0, (node, answer.stderr)
        assert not answer.stdout.startswith('203.0.113.'), (node, answer.stdout)


def test_policy_local_keeps_the_client_ip_and_serves_only_local_endpoints(nodes, underlay, outside, echo):
    port = node_ports(nodes)['default/echo-local']
    local = {p.node for p in echo}
    for node, address in underlay.items():
        answer = outside('curl -s -m 3 http://%s:%d/clientip' % (address, port))
        if node in local:
            assert answer.stdout.startswith('203.0.113.'), (node, answer.stdout, answer.stderr)
        else:
            assert answer.returncode == 28, (node, 'a node without a local endpoint drops')


def test_a_load_balancer_port_answers_on_every_nodes_address(underlay, outside, echo):
    """As k3s's ServiceLB: the Service's own port on each node's address."""
    for node, address in underlay.items():
        answer = outside('curl -s -m 5 http://%s:8088/hostname' % address)
        assert answer.stdout in {p.name for p in echo}, (node, answer.stdout, answer.stderr)


def test_the_endpoint_is_judged_by_policy_after_dnat(vips, echo, clients):
    """`guarded` admits only pods labelled role=friend (the echo pods): the
    policy sees the endpoint pod behind the ClusterIP, and a denied
    connection times out (drop), as G5 says."""
    vip = vips['default/guarded', 'tcp', 80]
    assert echo[0].run('curl -s -m 5 http://%s/hostname', vip).stdout.startswith('guarded-')
    assert clients[0].run('curl -s -m 2 http://%s/hostname', vip).rc == 28


def test_a_pod_isolated_by_policy_still_reaches_itself_through_its_service(vips, pods):
    """Hairpin is masqueraded to the pod's node, whose traffic NetworkPolicy
    never blocks: `guarded` admits only friends, and itself."""
    guarded, = [p for key, p in pods.items() if key.startswith('default/guarded-')]
    answer = guarded.run('curl -s -m 5 http://%s/hostname', vips['default/guarded', 'tcp', 80])
    assert answer.stdout == guarded.name, (answer.rc, answer.stdout)
