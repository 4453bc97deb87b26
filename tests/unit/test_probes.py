"""Probes: validated as the API server validates them (plan/probes.py),
and tried from the node as the kubelet tries them (pods/probes.py), here
against real servers on loopback and a fake spawner for exec."""
import copy
import http.server
import os
import socket
import threading
import urllib.request

import pytest
import yaml
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel.linux import read_stat
from ansible.module_utils.podnet.plan import manifests
from ansible.module_utils.podnet.plan import probes as planned
from ansible.module_utils.podnet.pods import probes
from ansible.module_utils.podnet.pods.records import KEY
from ansible.module_utils.podnet.pods.spawner import TIMED_OUT

POD = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'web'},
       'spec': {'containers': [{'name': 'c', 'image': 'busybox', 'command': ['sleep', '1'],
                                'ports': [{'containerPort': 8080, 'name': 'http'}]}]}}
TIMING = {'initial_delay': 0, 'timeout': 1, 'period': 10, 'success_threshold': 1, 'failure_threshold': 3}


def probes_of(tmp_path, **fields):
    doc = copy.deepcopy(POD)
    doc['spec']['containers'][0].update(fields)
    file = tmp_path / 'pod.yaml'
    file.write_text(yaml.safe_dump(doc))
    return manifests.load([file]).pods[0].containers[0].probes


def refusal(tmp_path, **fields):
    with pytest.raises(SpecError) as info:
        probes_of(tmp_path, **fields)
    return str(info.value).split('Pod default/web: ', 1)[1]


# -- the plan -----------------------------------------------------------------
def test_probes_are_defaulted_as_the_api_server_does_and_named_ports_resolved(tmp_path):
    found = probes_of(tmp_path, readinessProbe={'httpGet': {'port': 'http'}},
                      livenessProbe={'tcpSocket': {'port': 8080}, 'periodSeconds': 5},
                      startupProbe={'exec': {'command': ['true']}, 'failureThreshold': 30})
    assert found == {
        'readiness': dict(TIMING, handler='httpGet', port=8080, path='/', scheme='HTTP', headers=[]),
        'liveness': dict(TIMING, handler='tcpSocket', port=8080, period=5),
        'startup': dict(TIMING, handler='exec', command=['true'], failure_threshold=30)}


def test_a_grpc_probe_is_planned_to_be_tried_with_its_service(tmp_path):
    found = probes_of(tmp_path, livenessProbe={'grpc': {'port': 9090}},
                      readinessProbe={'grpc': {'port': 9090, 'service': 'shop.Cart'}})
    assert found == {'liveness': dict(TIMING, handler='grpc', port=9090, service=''),
                     'readiness': dict(TIMING, handler='grpc', port=9090, service='shop.Cart')}


@pytest.mark.parametrize('fields, words', [
    ({'readinessProbe': {'periodSeconds': 5}},
     'spec.containers[0].readinessProbe: must specify a handler type'),
    ({'readinessProbe': {'httpGet': {'port': 80}, 'tcpSocket': {'port': 80}}},
     'spec.containers[0].readinessProbe: may not specify more than 1 handler type (httpGet, tcpSocket)'),
    ({'readinessProbe': {'tcpSocket': {'port': 'metrics'}}},
     "spec.containers[0].readinessProbe.tcpSocket.port: 'metrics' names no port of this container (named: http)"),
    ({'readinessProbe': {'tcpSocket': {'port': 0}}},
     'spec.containers[0].readinessProbe.tcpSocket.port: 0 must be a port number'),
    ({'livenessProbe': {'tcpSocket': {'port': 80}, 'successThreshold': 2}},
     'spec.containers[0].livenessProbe.successThreshold: must be 1 for a liveness probe'),
    ({'readinessProbe': {'tcpSocket': {'port': 80}, 'timeoutSeconds': -1}},
     'spec.containers[0].readinessProbe.timeoutSeconds: -1 must be an integer >= 0'),
    ({'readinessProbe': {'exec': {'command': []}}},
     'spec.containers[0].readinessProbe.exec.command: required'),
    ({'readinessProbe': {'httpGet': {'port': 80, 'scheme': 'FTP'}}},
     "spec.containers[0].readinessProbe.httpGet.scheme: 'FTP' must be one of HTTP, HTTPS"),
    ({'readinessProbe': {'httpGet': {'port': 80, 'host': '192.0.2.1'}}},
     'spec.containers[0].readinessProbe.httpGet.host: not supported by podnet'),
    ({'readinessProbe': {'grpc': {'port': 'http'}}},
     "spec.containers[0].readinessProbe.grpc.port: 'http' must be a port number"),
    ({'readinessProbe': {'grpc': {'port': 9090, 'service': 7}}},
     'spec.containers[0].readinessProbe.grpc.service: 7 must be a string'),
    ({'readinessProbe': {'tcpSocket': {'port': 80}, 'periodSecond': 5}},
     'spec.containers[0].readinessProbe.periodSecond: unknown'),
])
def test_invalid_probes_are_refused_naming_the_field(tmp_path, fields, words):
    assert refusal(tmp_path, **fields).startswith(words)


def test_a_stand_in_passes_untried_what_it_cannot_answer():
    found = planned.for_stand_in({
        'readiness': dict(TIMING, handler='httpGet', port=8080, path='/', scheme='HTTP', headers=[]),
        'liveness': dict(TIMING, handler='exec', command=['check']),
        'startup': dict(TIMING, handler='tcpSocket', port=9000)}, {8080})
    assert 'skip' not in found['readiness']
    assert found['liveness']['skip'] == 'its exec probe cannot run in a stand-in'
    assert found['startup']['skip'] == 'the stand-in does not serve TCP port 9000'
    assert planned.notes('api', found) == [
        'container api: liveness probe counts as passing: its exec probe cannot run in a stand-in',
        'container api: startup probe counts as passing: the stand-in does not serve TCP port 9000']


def test_a_stand_in_passes_a_grpc_probe_untried_even_on_a_port_it_serves():
    found = planned.for_stand_in({'readiness': dict(TIMING, handler='grpc', port=7070, service='')}, {7070})
    assert planned.notes('server', found) == [
        'container server: readiness probe counts as passing: the stand-in does not serve gRPC']


# -- the node ------------------------------------------------------------------
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == '/ok' else 503)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


class FakeSpawner:
    """Answers exec probes with the given exit codes, and keeps the requests."""

    def __init__(self, *codes):
        self.codes, self.asked = list(codes), []

    def probe(self, subject, **req):
        self.asked.append(req)
        return self.codes.pop(0)


def running(**probes_by_kind):
    """(record, pod) of a pod on loopback whose one container is this process."""
    container = {'name': 'main', 'argv': ['x'], 'env': {'A': '1'}, 'probes': probes_by_kind,
                 'capabilities': ['NET_RAW'], 'user': {'uid': 1000, 'gid': 1000, 'groups': []}}
    record = {KEY: 'default/web', 'ip': '127.0.0.1', 'cgroup': '',
              'containers': {'main': {'pid': os.getpid(), 'start': read_stat(os.getpid())[1]}}}
    return record, {'namespace': 'default', 'name': 'web', 'containers': [container]}


def http_probe(port, path):
    return dict(TIMING, handler='httpGet', port=port, path=path, scheme='HTTP', headers=[])


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_a_passing_readiness_probe_makes_a_ready_pod(server):
    record, pod = running(readiness=http_probe(server, '/ok'))
    assert probes.Prober({}, FakeSpawner()).judge(record, pod, []) == ([], {})


def test_a_failing_http_or_tcp_probe_says_why(server):
    record, pod = running(readiness=http_probe(server, '/bad'),
                          liveness=dict(TIMING, handler='tcpSocket', port=free_port()))
    unready, unhealthy = probes.Prober({}, FakeSpawner()).judge(record, pod, [])
    assert unready == ['container main: readiness probe failed: HTTP status 503']
    assert unhealthy['main'].startswith('container main: liveness probe failed: ')
    assert 'refused' in unhealthy['main']


def test_an_exited_container_is_not_ready_and_its_probes_are_not_tried(server):
    spawner = FakeSpawner()
    record, pod = running(readiness=dict(TIMING, handler='exec', command=['check']))
    assert probes.Prober({}, spawner).judge(record, pod, ['main']) == (['container main exited'], {})
    assert spawner.asked == []


def test_an_exec_probe_runs_confined_as_its_container():
    spawner = FakeSpawner(1, 0)
    record, pod = running(readiness=dict(TIMING, handler='exec', command=['check', '--ready']))
    assert probes.Prober({}, spawner).judge(record, pod, []) == (
        ['container main: readiness probe failed: exit code 1'], {})
    [asked] = spawner.asked
    assert asked['argv'] == ['check', '--ready'] and asked['target'] == os.getpid()
    assert asked['user'] == {'uid': 1000, 'gid': 1000, 'groups': []} and asked['caps'] == [13]
    assert asked['seccomp'] is True and asked['env']['A'] == '1' and asked['timeout'] == 1


def test_a_liveness_probe_fails_only_after_failure_threshold_tries_in_a_row():
    spawner = FakeSpawner(1, 1, 0)
    record, pod = running(liveness=dict(TIMING, handler='exec', command=['check']))
    assert probes.Prober({}, spawner).judge(record, pod, []) == ([], {})
    spawner = FakeSpawner(1, TIMED_OUT, 1)
    assert probes.Prober({}, spawner).judge(record, pod, [])[1] == {
        'main': 'container main: liveness probe failed: exit code 1'}
    assert len(spawner.asked) == 3


def test_probes_wait_for_initial_delay_and_for_startup():
    record, pod = running(readiness=dict(TIMING, handler='exec', command=['x'], initial_delay=10 ** 6),
                          liveness=dict(TIMING, handler='exec', command=['x'], initial_delay=10 ** 6))
    unready, unhealthy = probes.Prober({}, FakeSpawner()).judge(record, pod, [])
    assert unready == ['container main: readiness probe waits 1000000s (initialDelaySeconds)'] and unhealthy == {}
    record, pod = running(startup=dict(TIMING, handler='exec', command=['x']),
                          liveness=dict(TIMING, handler='exec', command=['x']))
    spawner = FakeSpawner(1)
    assert probes.Prober({}, spawner).judge(record, pod, []) == (
        ['container main: startup probe failed: exit code 1'], {})
    assert len(spawner.asked) == 1  # liveness waits for startup


def test_a_skipped_probe_passes_untried():
    spawner = FakeSpawner()
    record, pod = running(readiness=dict(TIMING, handler='exec', command=['x'], skip='not in a stand-in'))
    assert probes.Prober({}, spawner).judge(record, pod, []) == ([], {}) and spawner.asked == []


def test_a_grpc_probe_passes_on_serving_only(health_server):
    port, http_port = health_server()
    prober = probes.Prober({}, FakeSpawner())
    record, pod = running(readiness=dict(TIMING, handler='grpc', port=port, service=''),
                          liveness=dict(TIMING, handler='grpc', port=port, service='shop.Cart'))
    assert prober.judge(record, pod, []) == ([], {'main': 'container main: liveness probe failed: '
                                                          'grpc-status 5 (NOT_FOUND): unknown service'})
    urllib.request.urlopen('http://127.0.0.1:%d/make-not-serving' % http_port, timeout=5).close()
    assert prober.judge(record, pod, [], liveness=False) == (
        ['container main: readiness probe failed: gRPC status NOT_SERVING'], {})
    record, pod = running(startup=dict(TIMING, handler='grpc', port=free_port(), service=''))
    assert prober.judge(record, pod, []) == (['container main: startup probe failed: connection refused'], {})


def test_settle_retries_readiness_until_it_passes(monkeypatch):
    monkeypatch.setattr(probes, 'SETTLE_STEP', 0.01)
    spawner = FakeSpawner(1, 1, 0)
    record, pod = running(readiness=dict(TIMING, handler='exec', command=['x']))
    assert probes.Prober({}, spawner).settle({'default/web': (record, pod)}, lambda r: []) == {}
    assert len(spawner.asked) == 3


def test_settle_does_not_wait_for_an_exited_container(monkeypatch):
    monkeypatch.setattr(probes, 'SETTLE_SECONDS', 60)
    record, pod = running()
    assert probes.Prober({}, FakeSpawner()).settle({'default/web': (record, pod)}, lambda r: ['main']) == {
        'default/web': ['container main exited']}
