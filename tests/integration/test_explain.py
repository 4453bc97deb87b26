"""playbooks/explain.yml (issue 9): the path of the seed's three flows read
hop by hop from the kernels, on vxlan across routed racks (multirack) and
on host-gw (the 3-node lab); drift names the hop that breaks; bad input
fails naming the argument before any probe is sent."""
import html
import json

import pytest
from integration.conftest import playbook, pod_records, running_lab

pytestmark = pytest.mark.lab


def explain(lab, tmp_path, source, destination, *extra, check=True):
    out = tmp_path / 'path.json'
    done = playbook(lab.inventory, 'playbooks/explain.yml', '-e', 'from=' + source,
                    '-e', 'to=' + destination, '-e', 'explain_output=%s' % out, *extra, check=check)
    return (json.loads(out.read_text()) if out.exists() else None), done


def where(lab):
    """{pod key: (node, record)} of every pod."""
    return {'%(namespace)s/%(name)s' % r: (node, r)
            for node, host in lab.hosts.items() for r in pod_records(host)}


def ats(path):
    return [hop['at'] for hop in path['hops']]


def cross_node_sequence(src, src_node, dst, dst_node, tunnel, fabric):
    """The interfaces a cross-node packet crosses, in order, as explain names them."""
    src_veth, dst_veth = src['veth'], dst['veth']
    sending = ['%s flannel.1' % src_node] * 3 + ['%s underlay' % src_node] if tunnel else \
        ['%s eth0' % src_node] * 2
    arriving = ['%s flannel.1' % dst_node] if tunnel else ['%s eth0' % dst_node]
    key = '%(namespace)s/%(name)s'
    return ([key % src + ' eth0'] * 3 + ['%s %s' % (src_node, src_veth), '%s route' % src_node]
            + sending + ['%s nftables' % src_node, 'ip podnet-nat', 'NetworkPolicy egress'] + fabric
            + arriving + ['%s route' % dst_node] + ['%s cni0' % dst_node] * 3
            + ['%s %s' % (dst_node, dst_veth), '%s nftables' % dst_node, 'NetworkPolicy ingress',
               key % dst + ' eth0', 'probe'])


def seed_pair(lab, same_rack):
    """Two seed netexec pods on different nodes, in one rack or not."""
    found = where(lab)
    racks = {n: v['podnet_rack'] for n, v in lab.vars.items()}
    servers = sorted(k for k in found if k.startswith('default/netexec-'))
    for a in servers:
        for b in servers:
            na, nb = found[a][0], found[b][0]
            if na != nb and (racks[na] == racks[nb]) == same_rack:
                return a, b, found
    pytest.fail('no seed pods on two nodes %s' % ('of one rack' if same_rack else 'across racks'))


@pytest.fixture(scope='module')
def seeded(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    return multirack


def test_cross_rack_vxlan_path_is_read_hop_by_hop(seeded, tmp_path):
    a, b, found = seed_pair(seeded, same_rack=False)
    path, _ = explain(seeded, tmp_path, a, b)
    (na, ra), (nb, rb) = found[a], found[b]
    rack_b = seeded.vars[nb]['podnet_rack']
    fabric = ['fabric br-%s' % rack_b, 'fabric p-%s' % nb]
    assert ats(path) == cross_node_sequence(ra, na, rb, nb, True, fabric)
    assert path['stops_at'] is None and path['agrees']
    assert path['hops'][-1]['says'] == '%s: connected, the destination saw source %s' % (b, ra['ip'])
    assert 'fdb' in path['hops'][7]['says'] and seeded.vars[nb]['podnet_underlay_ip'] in path['hops'][7]['says']


def test_same_node_and_same_pod_paths(seeded, tmp_path):
    found = where(seeded)
    by_node = {}
    for key, (node, _) in sorted(found.items()):
        by_node.setdefault(node, []).append(key)
    node, (a, b) = next((n, ks[:2]) for n, ks in by_node.items() if len(ks) > 1)
    path, _ = explain(seeded, tmp_path, a, b, '-e', 'dport=8080')
    ra, rb = found[a][1], found[b][1]
    assert ats(path) == ['%s eth0' % a] * 3 + ['%s %s' % (node, ra['veth']), '%s route' % node] + \
        ['%s cni0' % node] * 3 + ['%s %s' % (node, rb['veth']), '%s nftables' % node, 'ip podnet-nat',
                                  'NetworkPolicy egress',
                                  'NetworkPolicy ingress', '%s eth0' % b, 'probe']
    assert 'bridge fdb' in path['hops'][7]['says']

    lo, _ = explain(seeded, tmp_path, a, a, '-e', 'dport=8080')
    assert ats(lo) == ['%s lo' % a] * 2 + ['probe']
    assert 'local %s dev lo' % ra['ip'] in lo['hops'][0]['says']


def test_drift_names_the_broken_hop(seeded, tmp_path):
    a, b, found = seed_pair(seeded, same_rack=True)
    (na, ra), (nb, _) = found[a], found[b]
    host = seeded.hosts[na]
    vtep_mac = host.check_output("ip neigh show dev flannel.1 | awk '/%s/ {print $3}'"
                                 % seeded.hosts[nb].check_output('cat /var/lib/podnet/pod-cidr').split('/')[0])
    host.check_output('bridge fdb del %s dev flannel.1' % vtep_mac)
    try:
        path, _ = explain(seeded, tmp_path, a, b)
        assert path['stops_at']['at'] == '%s flannel.1' % na
        assert path['stops_at']['problem'] == \
            'flannel.1 has no FDB entry for %s: no underlay destination' % vtep_mac
        assert path['agrees'], 'the probe got through a path explain says is broken'

        host.check_output('ip netns exec %s ip route del default' % ra['netns'])
        path, _ = explain(seeded, tmp_path, a, b)
        assert path['stops_at']['at'] == '%s eth0' % a
        assert path['stops_at']['problem'].startswith('no route in the pod')
        playbook(seeded.inventory, 'playbooks/site.yml')

        # A drop rule podnet did not write, on the destination's node.
        seeded.hosts[nb].check_output(
            "nft add table ip evil && nft 'add chain ip evil fw { type filter hook forward priority 0; }'"
            " && nft add rule ip evil fw ip daddr %s tcp dport 8080 counter drop" % found[b][1]['ip'])
        path, _ = explain(seeded, tmp_path, a, b)
        assert path['stops_at'] == {'at': '%s nftables' % nb, 'problem': 'dropped by ip evil chain fw rule 0',
                                    'says': 'filter chains: ip evil chain fw rule 0 drops it'}
        assert path['agrees'] and path['hops'][-1]['says'] == '%s: timeout' % b
    finally:
        seeded.hosts[nb].run('nft delete table ip evil')
        playbook(seeded.inventory, 'playbooks/site.yml')
        playbook(seeded.inventory, 'playbooks/site.yml')


@pytest.mark.parametrize('args, message', [
    (('from=default/nope', 'to=default/netexec-a'), 'from: no pod default/nope runs in the cluster'),
    (('from=default/netexec-a', 'to=10.300.0.1'),
     "to: '10.300.0.1' is neither a pod (namespace/name) nor an IPv4 address"),
    (('from=default/netexec-a', 'to=default/netexec-b', 'dport=http'), "port: 'http' is not a port number"),
    # port=, dport's name before, still reaches the module.
    (('from=default/netexec-a', 'to=default/netexec-b', 'port=http'), "port: 'http' is not a port number"),
    (('from=default/netexec-a', 'to=default/netexec-b', 'protocol=ICMP'),
     "protocol: 'ICMP' must be one of TCP, UDP, SCTP"),
    (('to=default/netexec-b',), 'from: missing: give -e from=<namespace>/<name>')])
def test_bad_input_is_refused_before_any_probe(seeded, args, message):
    extra = [x for arg in args for x in ('-e', arg)]
    done = playbook(seeded.inventory, 'playbooks/explain.yml', *extra, check=False)
    assert done.returncode != 0 and message in done.stdout
    assert "Read this node's half" not in done.stdout


@pytest.fixture(scope='module')
def host_gw(tmp_path_factory):
    for lab in running_lab('lab', 'lab'):
        playbook(lab.inventory, 'playbooks/site.yml', '-e', 'podnet_backend=host-gw')
        yield lab


def test_host_gw_path_goes_by_the_next_hop_on_the_underlay(host_gw, tmp_path):
    a, b, found = seed_pair(host_gw, same_rack=True)
    (na, ra), (nb, rb) = found[a], found[b]
    path, _ = explain(host_gw, tmp_path, a, b)
    rack = host_gw.vars[nb]['podnet_rack']
    assert ats(path) == cross_node_sequence(ra, na, rb, nb, False, ['fabric br-%s' % rack, 'fabric p-%s' % nb])
    assert 'via %s dev eth0' % host_gw.vars[nb]['podnet_underlay_ip'] in path['hops'][4]['says']
    assert path['stops_at'] is None and path['agrees']


def test_graph_draws_the_live_cluster_with_a_path(seeded, tmp_path):
    a, b, found = seed_pair(seeded, same_rack=False)
    explain(seeded, tmp_path, a, b, '-e', 'explain_picture=%s' % (tmp_path / 'explained'))
    drawn = html.unescape((tmp_path / 'explained.svg').read_text())
    assert '%s to %s' % (a, b) in drawn and '#d62728' in drawn, 'explain drew no path'
    playbook(seeded.inventory, 'playbooks/graph.yml', '-e', 'graph_path=%s' % (tmp_path / 'path.json'),
             '-e', 'graph_output=%s' % (tmp_path / 'cluster'))
    svg = html.unescape((tmp_path / 'cluster.svg').read_text())  # dot writes - as &#45;
    assert svg.lstrip().startswith('<?xml') and '<svg' in svg
    for shown in [a, b, found[a][1]['ip'], found[a][1]['veth'], 'flannel.1', 'rack2 switch', 'outside host']:
        assert shown in svg, shown
    assert '#d62728' in svg, 'the path is not drawn'
    assert (tmp_path / 'cluster.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
