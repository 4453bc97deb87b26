"""G3: pod to pod, on the same node and across nodes, without NAT: the
receiving server sees the sender's pod IP."""


def client_ip(source, target):
    answer = source.run('curl -s -m 5 http://%s:8080/clientip', target.ip)
    assert answer.rc == 0, (source, target, answer.stderr)
    return answer.stdout.rsplit(':', 1)[0]


def test_servers_see_the_client_pod_ip_same_node_and_across(pods, servers, sample):
    """Sampled (at scale), only pairs across nodes are tried."""
    pairs = {'same node': 0, 'across nodes': 0}
    for source, target in sample.pairs(list(pods.values()), servers):
        assert client_ip(source, target) == source.ip, (source, target)
        pairs['same node' if source.node == target.node else 'across nodes'] += 1
    kinds = pairs if not sample.size else {'across nodes': pairs['across nodes']}
    assert all(kinds.values()), 'the cluster lacks a pair of one kind: %s' % pairs


def test_httpbin_reports_the_caller_pod_ip(pods, servers):
    httpbin = [p for p in pods.values() if 'httpbin' in p.containers]
    assert httpbin, 'no httpbin pod (the seed multi-container-pod)'
    for source in servers:
        answer = source.run('curl -s -m 5 http://%s:80/ip', httpbin[0].ip)
        assert '"origin": "%s"' % source.ip in answer.stdout, (source, answer.stdout)
