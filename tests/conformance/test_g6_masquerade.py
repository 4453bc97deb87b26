"""G6: only traffic leaving the cluster CIDR is masqueraded, to the node's
address; nothing pod-to-pod or node-to-pod is (those halves are in G3, G4)."""
import pytest


@pytest.fixture(scope='module')
def outside(node_vars):
    lab = next(iter(node_vars.values())).get('podnet_lab') or {}
    address = (lab.get('outside') or {}).get('host_ip')
    if not address:
        pytest.skip('this inventory declares no outside host (podnet_lab.outside.host_ip)')
    return address


def test_the_outside_host_sees_the_node_address(pods, underlay, outside, sample):
    for pod in sample.pods(pods):
        answer = pod.run('curl -s -m 5 http://%s/clientip', outside)
        assert answer.rc == 0, (pod, answer.stderr)
        assert answer.stdout.rsplit(':', 1)[0] == underlay[pod.node], pod


def test_the_outside_host_cannot_answer_an_unmasqueraded_pod(nodes, pods, outside):
    """Without the node's masquerade the reply has no way back: the outside
    network knows no route to pods. Proves the NAT is what carries egress.
    An earlier nat chain binds the pod's flow to its own address, which
    keeps podnet's masquerade chain from seeing it."""
    pod = next(iter(pods.values()))
    host = nodes[pod.node]
    host.check_output('nft add table ip podnet-g6-probe')
    try:
        host.check_output("nft 'add chain ip podnet-g6-probe post { type nat hook postrouting "
                          "priority srcnat - 1; }'")
        host.check_output("nft add rule ip podnet-g6-probe post ip saddr %s snat to %s",
                          pod.ip, pod.ip)
        assert pod.run('curl -s -m 2 http://%s/clientip', outside).rc != 0
    finally:
        host.run('nft delete table ip podnet-g6-probe')
    assert pod.run('curl -s -m 5 http://%s/clientip', outside).rc == 0
