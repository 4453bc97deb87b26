"""The seed's list, on whatever wires the pods

"These tasks are delegated by the container to the network plugin": the
pod's network namespace, the interface and its veth pair, the namespace's
networking and routes, the bridge, the IP, the NAT rules. Each is checked
here the same way whoever wired the pod (podnet itself, or a CNI chain:
Debian's bridge or ptp, podnet-cni), against what that wiring promises
(WIRINGS): a bridge plugin puts the veth on its bridge, ptp routes each pod
on its own veth and has no bridge."""
import ipaddress
import re

# What each wiring promises, by the type of the first plugin of the list that
# wired the pod (native: podnet's own). bridge: the bridge the host side of
# the veth is on (None: no bridge, a route to the pod on its veth instead).
WIRINGS = {'native': {'bridge': 'cni0'}, 'bridge': {'bridge': 'cni0'}, 'podnet-cni': {'bridge': 'cni0'},
           'ptp': {'bridge': None}}


def wiring_of(pod):
    """(name, promise) of the wiring of a pod; a list's bridge plugin says
    which bridge it uses."""
    if not pod.chain:
        return 'native', WIRINGS['native']
    first = (pod.chain.get('plugins') or [{}])[0]
    promise = dict(WIRINGS.get(first.get('type'), {'bridge': None}))
    if promise['bridge']:
        promise['bridge'] = first.get('bridge') or promise['bridge']
    return first.get('type'), promise


def gateway_of(pod, pod_cidrs):
    return str(ipaddress.IPv4Network(pod_cidrs[pod.node]).network_address + 1)


def link_index(output):
    """The ifindex and peer ifindex of `ip -o link show` output ('4: eth0@if12: ...')."""
    found = re.match(r'(\d+): [^@:]+@if(\d+):', output)
    assert found, output
    return int(found.group(1)), int(found.group(2))


def test_the_pod_has_its_network_namespace_held_by_pause(pods, sample):
    for pod in sample.pods(pods):
        assert pod.host.file('/run/netns/' + pod.netns).exists, pod
        assert pod.host.check_output('ip netns identify %s', str(pod.pause_pid)) == pod.netns, pod


def test_eth0_is_a_veth_whose_peer_is_the_pod_veth_on_the_node(pods, sample):
    for pod in sample.pods(pods):
        inside = pod.run('ip -o -d link show eth0')
        assert inside.rc == 0 and ' veth ' in inside.stdout, (pod, inside.stdout)
        eth0, peer = link_index(inside.stdout)
        outside = pod.host.run('ip -o -d link show %s', pod.veth)
        assert outside.rc == 0 and ' veth ' in outside.stdout, (pod, outside.stderr)
        assert link_index(outside.stdout) == (peer, eth0), (pod, inside.stdout, outside.stdout)


def test_the_pod_namespace_has_lo_up_and_a_default_route_via_the_gateway(pods, pod_cidrs, sample):
    for pod in sample.pods(pods):
        assert 'inet 127.0.0.1/8' in pod.run('ip -o addr show dev lo').stdout, pod
        assert 'UP' in pod.run('ip -o link show dev lo').stdout, pod
        routes = pod.run('ip -4 route show default').stdout
        assert re.search(r'default via %s dev eth0' % re.escape(gateway_of(pod, pod_cidrs)), routes), (pod, routes)


def test_the_bridge_holds_the_veth_where_the_wiring_makes_one(pods, pod_cidrs, sample):
    for pod in sample.pods(pods):
        name, promise = wiring_of(pod)
        shown = pod.host.check_output('ip -o link show %s', pod.veth)
        if promise['bridge']:
            assert ' master %s ' % promise['bridge'] in shown, (pod, name, shown)
            held = pod.host.check_output('ip -o -4 addr show dev %s', promise['bridge'])
            prefixlen = ipaddress.IPv4Network(pod_cidrs[pod.node]).prefixlen
            assert ' %s/%d ' % (gateway_of(pod, pod_cidrs), prefixlen) in held, (pod, name, held)
        else:  # routed: no bridge, the node's route to the pod is its veth
            assert ' master ' not in shown, (pod, name, shown)
            route = pod.host.check_output('ip -4 route get %s', pod.ip)
            assert ' dev %s ' % pod.veth in route, (pod, name, route)


def test_the_ip_is_on_eth0_and_from_the_node_pod_cidr(pods, pod_cidrs, sample):
    for pod in sample.pods(pods):
        network = ipaddress.IPv4Network(pod_cidrs[pod.node])
        assert ipaddress.IPv4Address(pod.ip) in network, pod
        shown = pod.run('ip -o -4 addr show dev eth0').stdout
        assert ' %s/%d ' % (pod.ip, network.prefixlen) in shown, (pod, shown)


def test_the_node_masquerades_its_pods_leaving_the_cluster_only(nodes, pod_cidrs):
    """podnet's ip podnet-nat table (flanneld's part, FLANNEL_IPMASQ=true), and
    no masquerade of a plugin's own (a chain's ipMasq off) that would hide
    pod-to-pod sources."""
    for name, host in nodes.items():
        table = host.run('nft list table ip podnet-nat')
        assert table.rc == 0 and 'masquerade' in table.stdout, (name, table.stderr)
        assert '10.42.0.0/16' in table.stdout, (name, table.stdout)
        ruleset = host.check_output('nft list ruleset')
        foreign = [line.strip() for line in ruleset.splitlines() if 'masquerade' in line and 'CNI-' in line]
        assert foreign == [], (name, foreign)

