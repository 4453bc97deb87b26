"""G4: nodes (agents on them) reach every pod, and pods reach nodes."""
from conformance.conftest import unreachable_from


def test_every_node_talks_http_to_every_server_pod(nodes, servers):
    for name, host in nodes.items():
        for pod in servers:
            answer = host.run('curl -s -m 5 http://%s:8080/hostname', pod.ip)
            assert answer.rc == 0 and answer.stdout.strip() == pod.name, (name, pod)


def test_a_local_agent_keeps_its_address_towards_pods(nodes, servers, pod_cidrs):
    for pod in servers:
        seen = nodes[pod.node].check_output('curl -s -m 5 http://%s:8080/clientip', pod.ip)
        gateway = pod_cidrs[pod.node].rsplit('.', 1)[0] + '.1'
        assert seen.rsplit(':', 1)[0] == gateway, (pod, seen)


def test_every_pod_reaches_every_node(pods, underlay, sample):
    missed = unreachable_from(pods, {pod.key: list(underlay.values()) for pod in sample.pods(pods)})
    assert missed and {key: lost for key, lost in missed.items() if lost} == {}
