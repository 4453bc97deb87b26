"""What real applications put in their pods, on a real lab: a container
whose image podnet cannot run gets the stand-in, which answers as agnhost
netexec on its ports; readiness probes (exec inside the container, as its
user and without capabilities; httpGet; grpc against agnhost
grpc-health-checking, flipped over HTTP) decide `unready`; a failing
liveness probe restarts its container; a healthy node converges to
changed=0. Init containers run in order before the containers, once per
sandbox; one that fails under restartPolicy Never leaves the pod Failed, with
no sandbox or address and a message naming it, and later runs leave it so."""
import json
import textwrap

import pytest
from integration.conftest import playbook, pod_records, recap, running_lab

pytestmark = pytest.mark.lab

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: standin}
spec:
  nodeName: node1
  containers:
  - name: api
    image: example.com/shop/api:1.0
    args: [--serve]
    ports: [{containerPort: 8080, name: http}, {containerPort: 5353, protocol: UDP}]
    readinessProbe: {httpGet: {path: /healthz, port: http}}
    livenessProbe: {exec: {command: [/app/health]}}
---
apiVersion: v1
kind: Pod
metadata: {name: ready}
spec:
  nodeName: node1
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "touch /tmp/ready && exec sleep 3600"]
    readinessProbe:
      exec:
        command:
        - sh
        - -c
        - 'test -e /tmp/ready && test "$(id -u)" = 1000 && grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status'
---
apiVersion: v1
kind: Pod
metadata: {name: notready}
spec:
  nodeName: node1
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    readinessProbe: {exec: {command: ["false"]}}
---
apiVersion: v1
kind: Pod
metadata: {name: dying}
spec:
  nodeName: node2
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    livenessProbe: {tcpSocket: {port: 9}, failureThreshold: 1}
"""
SHOW = """
- name: Converge
  ansible.builtin.import_playbook: %s/playbooks/site.yml

- name: Show what the pods module returned
  hosts: nodes
  gather_facts: false
  tasks:
    - name: Print it
      ansible.builtin.debug:
        msg: "RESULT {{ inventory_hostname }} {{ {'unready': podnet_pods_result.unready,
              'actions': podnet_pods_result.actions, 'ips': podnet_pods_result.ips,
              'failed': podnet_pods_result.failed_pods} | to_json }}"
"""


UDP_ECHO = ("python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
            "s.sendto(b'echo hi', ('%s', 5353)); print(s.recv(64).decode())\"")


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab')


def converge(lab, tmp_path, manifests, *options, check=True):
    book = tmp_path / 'show.yml'
    book.write_text(SHOW % lab.inventory.parents[1])
    done = playbook(lab.inventory, str(book), '-e', json.dumps({'podnet_manifests': manifests}), *options,
                    check=check)
    results = {}
    for line in done.stdout.splitlines():
        if '"msg": "RESULT ' in line:
            node, text = json.loads('{%s}' % line.strip())['msg'].split(' ', 2)[1:]
            results[node] = json.loads(text)
    return done, results


def test_stand_ins_probes_and_unready(lab, tmp_path):
    pods = tmp_path / 'pods.yaml'
    pods.write_text(textwrap.dedent(PODS))
    try:
        done, first = converge(lab, tmp_path, ['manifests/seed', str(pods)])
        assert 'podnet: stood in for 1 image podnet cannot run' in done.stdout
        assert 'example.com/shop/api:1.0 (default/standin/api)' in done.stdout
        assert 'container api: liveness probe counts as passing: its exec probe cannot run in a stand-in' in done.stdout
        assert first['node1']['unready'] == ['default/notready']
        node1, ip = lab.hosts['node1'], first['node1']['ips']['default/standin']
        assert node1.check_output('curl -s --max-time 3 http://%s:8080/hostname', ip) == 'standin'
        assert node1.check_output('curl -s --max-time 3 "http://%s:8080/echo?msg=podnet"', ip) == 'podnet'
        udp = node1.check_output(UDP_ECHO, ip)
        assert udp == 'hi'
        done, second = converge(lab, tmp_path, ['manifests/seed', str(pods)])
        assert recap(done)['node1']['changed'] == 0 and second['node1']['actions'] == []
        assert second['node1']['unready'] == ['default/notready']
        [restart] = second['node2']['actions']
        assert restart[:2] == ['restart', 'default/dying'] and 'liveness probe failed' in restart[2]
    finally:
        converge(lab, tmp_path, ['manifests/seed'])


GRPC_POD = """
apiVersion: v1
kind: Pod
metadata: {name: grpchealth}
spec:
  nodeName: node1
  containers:
  - name: server
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    args: [grpc-health-checking, --port=5000, --http-port=8080, --service=shop.Cart]
    ports: [{containerPort: 5000, name: grpc}, {containerPort: 8080}]
    readinessProbe: {grpc: {port: 5000, service: shop.Cart}}
"""


def test_a_grpc_readiness_probe_follows_the_servers_health(lab, tmp_path):
    pods = tmp_path / 'grpc.yaml'
    pods.write_text(textwrap.dedent(GRPC_POD))
    manifests = ['manifests/seed', str(pods)]
    try:
        _, first = converge(lab, tmp_path, manifests)
        assert first['node1']['unready'] == []
        node1, ip = lab.hosts['node1'], first['node1']['ips']['default/grpchealth']
        node1.check_output('curl -s --max-time 3 http://%s:8080/make-not-serving', ip)
        _, second = converge(lab, tmp_path, manifests)
        assert second['node1']['unready'] == ['default/grpchealth']
        node1.check_output('curl -s --max-time 3 http://%s:8080/make-serving', ip)
        _, third = converge(lab, tmp_path, manifests)
        assert third['node1']['unready'] == [] and third['node1']['actions'] == []
    finally:
        converge(lab, tmp_path, ['manifests/seed'])


INIT_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: initorder}
spec:
  nodeName: node1
  initContainers:
  - {name: wait, image: busybox, command: [sh, -c, "sleep 1; date +%s.%N"]}
  - {name: schema, image: example.com/shop/migrate:2}
  containers:
  - {name: main, image: busybox, command: [sh, -c, "date +%s.%N; exec sleep 3600"]}
"""
INIT_FAILS = """
apiVersion: v1
kind: Pod
metadata: {name: initfails}
spec:
  nodeName: node2
  restartPolicy: Never
  initContainers:
  - {name: check, image: busybox, command: [sh, -c, "echo db unreachable; exit 3"]}
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
"""
POD_DIR = '/var/lib/podnet/pods/default_initorder'


def test_init_containers_run_in_order_once_per_sandbox(lab, tmp_path):
    pods, failing = tmp_path / 'init.yaml', tmp_path / 'fails.yaml'
    pods.write_text(textwrap.dedent(INIT_PODS))
    failing.write_text(textwrap.dedent(INIT_FAILS))
    manifests, node1 = ['manifests/seed', str(pods)], lab.hosts['node1']
    try:
        checked, _ = converge(lab, tmp_path, manifests, '--check', '--diff')
        assert 'create default/initorder: new pod; init containers run first: wait, schema' in checked.stdout
        done, first = converge(lab, tmp_path, manifests)
        assert 'init container schema: its stand-in completes at once (exit 0)' in done.stdout
        assert ['create', 'default/initorder', 'new pod; init containers run first: wait, schema'] in (
            first['node1']['actions'])
        finished = float(node1.check_output('cat %s/wait.log', POD_DIR))
        started = float(node1.check_output('cat %s/main.log', POD_DIR))
        assert finished < started  # wait slept 1 s and wrote last; main wrote first
        assert 'completed' in node1.check_output('cat %s/schema.log', POD_DIR)
        [record] = [r for r in pod_records(node1) if r['name'] == 'initorder']
        assert record['init_containers'] == {'wait': {'exit_code': 0, 'tries': 1},
                                             'schema': {'exit_code': 0, 'tries': 1}}
        done, second = converge(lab, tmp_path, manifests)
        assert recap(done)['node1']['changed'] == 0 and second['node1']['actions'] == []
        node1.check_output('kill -9 %s', str(record['containers']['main']['pid']))
        _, third = converge(lab, tmp_path, manifests)
        assert [a[:2] for a in third['node1']['actions']] == [['restart', 'default/initorder']]
        assert node1.check_output('cat %s/wait.log', POD_DIR).count('\n') == 0  # one line: not run again
        # restartPolicy Never: the pod ends Failed, the run goes on, and the next leaves it so
        failed, ended = converge(lab, tmp_path, manifests + [str(failing)])
        why = ('init container check exited with code 3 (tried once, restartPolicy Never): '
               'none of its containers started; its log ends: db unreachable')
        assert ended['node2']['failed'] == {'default/initfails': why}
        assert 'default/initfails' not in ended['node2']['ips']
        assert 'pod default/initfails is Failed, and stays so until its spec changes' in failed.stdout + failed.stderr
        node2 = lab.hosts['node2']
        assert not [r for r in pod_records(node2) if r['name'] == 'initfails']
        assert not node2.run('test -e /var/lib/podnet/pods/default_initfails').succeeded
        sandboxes = [name for name in node2.check_output('ip netns list').split() if name.startswith('cni-')]
        assert len(sandboxes) == len(pod_records(node2))  # none left of the failed pod
        again, left = converge(lab, tmp_path, manifests + [str(failing)])
        assert recap(again)['node2']['changed'] == 0 and left['node2']['actions'] == []
        assert left['node2']['failed'] == {'default/initfails': why}
        _, gone = converge(lab, tmp_path, manifests)
        assert ['forget_failed', 'default/initfails', 'not wanted on this node'] in gone['node2']['actions']
        assert gone['node2']['failed'] == {}
        assert not node2.run('test -e /var/lib/podnet/failed-pods/default_initfails.json').succeeded
    finally:
        converge(lab, tmp_path, ['manifests/seed'])
