"""The cluster picture from facts: every node, pod, veth, bridge and tunnel
drawn, a tunnel only one side holds shown as drift, explain's hops mapped
onto the picture and drawn in colour."""
from ansible.module_utils.podnet.explain import graph


def facts(underlay, cidr, fdb, pods):
    return {'underlay': {'underlay_ip': underlay, 'underlay_prefixlen': 24, 'underlay_ifname': 'eth0',
                         'underlay_mtu': 1500},
            'pod_cidr': cidr, 'backend': 'vxlan', 'vtep': {'mac': '02:00:00:00:00:0%s' % underlay[-1], 'vni': 1},
            'fdb': fdb, 'pods': pods}


NODES = {
    'node1': facts('10.11.1.11', '10.42.0.0/24', {'02:00:00:00:00:02': '10.11.1.12'},
                   {'x/a': {'ip': '10.42.0.2', 'veth': 'veth0000000a', 'containers': {'web': 10}}}),
    'node2': facts('10.11.1.12', '10.42.1.0/24', {},
                   {'x/b': {'ip': '10.42.1.2', 'veth': 'veth0000000b', 'containers': {}}})}
LAB = {'racks': {'rack1': {'subnet': '10.11.1.0/24', 'gateway': '10.11.1.1'}},
       'outside': {'host_ip': '203.0.113.10'}}


def test_everything_is_drawn_from_the_facts():
    text = graph.dot(NODES, {'node1': 'rack1', 'node2': 'rack1'}, LAB)
    for expected in ['"pod:x/a" [label="x/a\\neth0 10.42.0.2\\nweb"', '"node1:veth0000000a"',
                     '"node2:cni0" [label="cni0\\n10.42.1.1/24"', '"rack:rack1" [label="rack1 switch\\n10.11.1.1',
                     '"outside" [label="outside host\\n203.0.113.10"', '"pod:x/a" -> "node1:veth0000000a"',
                     '"node1:eth0" -> "rack:rack1"']:
        assert expected in text, expected


def test_a_tunnel_only_one_node_holds_is_drawn_as_drift():
    text = graph.dot(NODES, {}, None)
    assert '"node1:flannel.1" -> "node2:flannel.1"' in text
    assert 'vxlan, only node1 has the FDB entry' in text


def test_explains_hops_are_mapped_and_coloured():
    hops = [{'at': a} for a in ('x/a eth0', 'x/a eth0', 'node1 veth0000000a', 'node1 route', 'node1 flannel.1',
                                'node1 underlay', 'ip podnet-nat', 'NetworkPolicy egress', 'fabric br-rack1',
                                'fabric p-node2', 'node2 flannel.1', 'node2 cni0', 'node2 veth0000000b',
                                'x/b eth0', 'probe')]
    assert graph.path_ids(hops, NODES) == [
        '"pod:x/a"', '"node1:veth0000000a"', '"node1:flannel.1"', '"node1:eth0"', '"rack:rack1"',
        '"node2:eth0"', '"node2:flannel.1"', '"node2:cni0"', '"node2:veth0000000b"', '"pod:x/b"']
    text = graph.dot(NODES, {'node1': 'rack1', 'node2': 'rack1'}, LAB, hops)
    assert '"pod:x/a" -> "node1:veth0000000a" [color="%s", penwidth="3"]' % graph.PATH_COLOUR in text
    assert '"node1:veth0000000a" -> "node1:flannel.1" [color="%s", penwidth=3, style=dashed' % graph.PATH_COLOUR in text
    assert '"pod:x/b" [color="%s", penwidth=3];' % graph.PATH_COLOUR in text
