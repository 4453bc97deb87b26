"""cluster.build(): MTU per backend, placement, peers, commands from the
image catalog (and its `paths`), each container's resources and seccomp
profile and each pod's QoS class, pod CIDRs kept, host-gw across racks refused."""
import json
import os
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.kernel import caps
from ansible.module_utils.podnet.plan import cluster
from ansible.module_utils.podnet.core.errors import SpecError

PYTHON, TOOLS = '/opt/podnet/venv/bin/python', '/opt/podnet/bin'
AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost'
CATALOG = {
    'kennethreitz/httpbin': {'entrypoint': [], 'cmd': [PYTHON, '/opt/podnet/venv/bin/gunicorn',
                                                      '-b', '0.0.0.0:80', 'httpbin:app']},
    'curlimages/curl': {'entrypoint': ['curl'], 'cmd': []},
    AGNHOST: {'entrypoint': [PYTHON, TOOLS + '/podnet-agnhost'], 'cmd': ['pause'],
              'paths': {'/agnhost': [PYTHON, TOOLS + '/podnet-agnhost']}},
}
MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: shop, labels: {app: pinned}}
spec:
  nodeName: node2
  containers:
  - {name: web, image: kennethreitz/httpbin}
---
apiVersion: v1
kind: Pod
metadata: {name: a-netexec}
spec:
  containers:
  - name: netexec
    image: %s:2.47
    command: ["/agnhost", "netexec"]
    args: ["--http-port=8080"]
---
apiVersion: v1
kind: Pod
metadata: {name: b-client}
spec:
  containers:
  - {name: curl, image: curlimages/curl, args: ["-s", "http://example"]}
---
apiVersion: v1
kind: Pod
metadata: {name: c-pause}
spec:
  containers:
  - {name: pause, image: "%s:2.47"}
""" % (AGNHOST, AGNHOST)


def node(name, ip, **changes):
    found = {'name': name, 'underlay_ip': ip, 'underlay_prefixlen': 24, 'underlay_ifname': 'eth0',
             'underlay_mtu': 1500, 'pod_cidr': None, 'explicit_pod_cidr': None}
    found.update(changes)
    return found


NODES = [node('node1', '10.11.1.11'), node('node2', '10.11.1.12'), node('node3', '10.11.1.13')]


@pytest.fixture
def manifests(tmp_path):
    path = tmp_path / 'pods.yaml'
    path.write_text(MANIFESTS)
    return [str(path)]


def build(manifests, backend='vxlan', nodes=NODES, unknown_images='stand-in'):
    return cluster.build(manifests, nodes, '10.42.0.0/16', backend, CATALOG, unknown_images=unknown_images)


def pod_of(plan, key):
    namespace, name = key.split('/')
    [found] = [p for n in plan['nodes'].values() for p in n['pods']
               if (p['namespace'], p['name']) == (namespace, name)]
    return found


def test_vxlan_mtu_leaves_room_for_the_encapsulation(manifests):
    assert {n: p['mtu'] for n, p in build(manifests)['nodes'].items()} == dict.fromkeys(
        ['node1', 'node2', 'node3'], 1450)


def test_host_gw_mtu_is_the_underlay_mtu(manifests):
    assert {p['mtu'] for p in build(manifests, 'host-gw')['nodes'].values()} == {1500}


def test_the_plan_names_its_backend(manifests):
    assert [build(manifests, b)['backend'] for b in ('vxlan', 'host-gw')] == ['vxlan', 'host-gw']


def test_pods_land_where_placement_says(manifests):
    plan = build(manifests)
    assert plan['placement'] == {'shop/pinned': 'node2', 'default/a-netexec': 'node1',
                                 'default/b-client': 'node3', 'default/c-pause': 'node1'}
    for name, node_plan in plan['nodes'].items():
        keys = ['%s/%s' % (p['namespace'], p['name']) for p in node_plan['pods']]
        assert keys == sorted(k for k, n in plan['placement'].items() if n == name)


def test_each_nodes_peers_are_the_other_nodes(manifests):
    plan = build(manifests)
    for name, node_plan in plan['nodes'].items():
        assert [p['name'] for p in node_plan['peers']] == [
            n['name'] for n in NODES if n['name'] != name]
    assert plan['nodes']['node1']['peers'][0] == {
        'name': 'node2', 'underlay_ip': '10.11.1.12', 'pod_cidr': '10.42.1.0/24',
        'vtep_mac': names.stable_mac('vtep', 'node2')}


def test_fresh_nodes_get_pod_cidrs_in_inventory_order(manifests):
    plan = build(manifests)
    assert [plan['nodes'][n]['pod_cidr'] for n in ('node1', 'node2', 'node3')] == [
        '10.42.0.0/24', '10.42.1.0/24', '10.42.2.0/24']
    assert plan['nodes']['node2']['node']['pod_cidr'] == '10.42.1.0/24'


def test_a_node_keeps_its_existing_pod_cidr(manifests):
    nodes = [NODES[0], node('node2', '10.11.1.12', pod_cidr='10.42.9.0/24'), NODES[2]]
    plan = build(manifests, nodes=nodes)
    assert plan['nodes']['node2']['pod_cidr'] == '10.42.9.0/24'
    assert plan['nodes']['node1']['peers'][0]['pod_cidr'] == '10.42.9.0/24'


def test_argv_comes_from_the_catalog(manifests):
    plan = build(manifests)
    assert pod_of(plan, 'shop/pinned')['containers'][0]['argv'] == CATALOG[
        'kennethreitz/httpbin']['cmd']
    assert pod_of(plan, 'default/b-client')['containers'][0]['argv'] == [
        'curl', '-s', 'http://example']
    assert pod_of(plan, 'default/c-pause')['containers'][0]['argv'] == [
        PYTHON, TOOLS + '/podnet-agnhost', 'pause']


def test_an_image_path_in_command_becomes_the_local_command(manifests):
    assert pod_of(build(manifests), 'default/a-netexec')['containers'][0]['argv'] == [
        PYTHON, TOOLS + '/podnet-agnhost', 'netexec', '--http-port=8080']


def test_pod_carries_labels_and_namespaces_carry_their_name_label(manifests):
    plan = build(manifests)
    assert pod_of(plan, 'shop/pinned')['labels'] == {'app': 'pinned'}
    assert plan['namespaces']['shop'] == {'kubernetes.io/metadata.name': 'shop'}
    assert 'default' in plan['namespaces']


def test_host_gw_across_two_subnets_is_refused(manifests):
    racks = [node('node1', '10.11.1.11'), node('node2', '10.11.2.12')]
    with pytest.raises(SpecError, match='L2 segment'):
        build(manifests, 'host-gw', racks)


def test_vxlan_across_two_subnets_is_fine(manifests):
    racks = [node('node1', '10.11.1.11'), node('node2', '10.11.2.12'),
             node('node3', '10.11.2.13')]
    assert set(build(manifests, 'vxlan', racks)['nodes']) == {'node1', 'node2', 'node3'}


def test_vtep_mac_is_stable_per_node(manifests):
    first, second = build(manifests), build(manifests)
    assert first['nodes']['node1']['vtep_mac'] == second['nodes']['node1']['vtep_mac'] \
        == names.stable_mac('vtep', 'node1')
    assert first['nodes']['node1']['vtep_mac'] != first['nodes']['node2']['vtep_mac']


def test_more_pods_than_a_node_cidr_holds_is_refused(tmp_path):
    path = tmp_path / 'many.yaml'
    path.write_text('\n---\n'.join(
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec:\n  nodeName: node1\n'
        '  containers: [{name: c, image: x, command: [sleep, "1"]}]' % i for i in range(254)))
    with pytest.raises(SpecError, match=r'node1: pod CIDR: 10.42.0.0/24 holds 253 pods, 254 are placed'):
        build([str(path)], nodes=[node('node1', '10.11.1.11')])


def pods_file(tmp_path, count):
    path = tmp_path / 'pods.yaml'
    path.write_text('\n---\n'.join(
        'apiVersion: v1\nkind: Pod\nmetadata: {name: p%d}\nspec:\n'
        '  containers: [{name: c, image: x, command: [sleep, "1"]}]' % i for i in range(count)))
    return [str(path)]


def test_more_pods_than_one_machine_has_memory_for_are_refused(tmp_path):
    """Lab nodes on one kernel share its memory; a VM has its own."""
    mib = 1 << 20
    lab = [node('node%d' % i, '10.11.1.1%d' % i, kernel='k1', memory_available=150 * mib)
           for i in (1, 2)]
    with pytest.raises(SpecError, match=r'^node1, node2: memory: 160 new pods need about 160 MiB '
                                        r'\(1 MiB each\), their machine has 150 MiB available$'):
        build(pods_file(tmp_path, 160), nodes=lab)
    vms = [node('vm%d' % i, '10.11.1.1%d' % i, kernel='k%d' % i, memory_available=150 * mib)
           for i in (1, 2)]
    assert len(build(pods_file(tmp_path, 160), nodes=vms)['placement']) == 160
    with pytest.raises(SpecError, match=r'^vm1: memory: 200 new pods need about 200 MiB \(1 MiB '
                                        r'each\), it has 150 MiB available$'):
        build(pods_file(tmp_path, 400), nodes=vms)


def test_more_pods_than_one_kernel_has_neighbour_entries_for_are_refused(tmp_path):
    """Regression: 1,000 lab pods overflowed the kernel's ARP table, shared by
    every namespace (gc_thresh3 1024), and pings and connects at scale were
    lost ("neighbor table overflow"). Pods running count as well as new ones."""
    lab = [node('node%d' % i, '10.11.1.1%d' % i, kernel='k1', neighbours_max=1024,
                pods=['default/p%d' % j for j in range(100 * i - 100, 100 * i)]) for i in (1, 2)]
    with pytest.raises(SpecError, match=r'^node1, node2: neighbour table: 260 pods and 2 nodes on one '
                                        r'kernel need about 528 ARP entries, twice that room, and its '
                                        r'table holds 1024 \(net.ipv4.neigh.default.gc_thresh3'):
        build(pods_file(tmp_path, 260), nodes=lab)
    assert len(build(pods_file(tmp_path, 260), nodes=[dict(n, neighbours_max=4096) for n in lab])['placement']) == 260
    vms = [dict(n, kernel='k%d' % i) for i, n in enumerate(lab)]
    assert len(build(pods_file(tmp_path, 260), nodes=vms)['placement']) == 260


def test_the_controller_tells_the_neighbour_table_of_lab_nodes_on_its_own_kernel():
    """A lab node's namespace does not show gc_thresh3; the controller, on the same kernel, does."""
    from ansible.module_utils.podnet.plan import capacity
    here = {'kernel': 'k1', 'memory_available': 1, 'neighbours_max': 4096}
    nodes = [node('node1', '10.11.1.11', kernel='k1', neighbours_max=None),
             node('vm1', '10.11.1.12', kernel='k2', neighbours_max=None),
             node('vm2', '10.11.1.13', kernel='k3', neighbours_max=512)]
    assert [n['neighbours_max'] for n in capacity.with_this_machine(nodes, here)] == [4096, None, 512]


def test_other_labs_on_the_kernel_count_against_its_neighbour_table(tmp_path):
    """Two embedded labs on one machine share its ARP table: 200 pods fit a
    2,048-entry table alone, not next to another lab's 400 pods (the
    controller sees them: pause processes, lab hosts' inits), and not
    counting this lab's own running pods twice."""
    from ansible.module_utils.podnet.plan import capacity
    here = {'kernel': 'k1', 'memory_available': 1 << 40, 'neighbours_max': 2048}
    lab = [node('node%d' % i, '10.11.1.1%d' % i, kernel='k1', neighbours_max=None, pid_namespace='pid:[%d]' % i,
                pods=['default/p%d' % j for j in range(100 * i - 100, 100 * i)]) for i in (1, 2)]
    ours = {'pid:[1]': 100, 'pid:[2]': 100}
    alone = capacity.with_this_machine(lab, dict(here, kernel_pods=200, kernel_lab_hosts=4, kernel_pods_by_node=ours))
    assert len(build(pods_file(tmp_path, 200), nodes=alone)['placement']) == 200
    crowded = capacity.with_this_machine(lab, dict(here, kernel_pods=600, kernel_lab_hosts=9,
                                                   kernel_pods_by_node=dict(ours, **{'pid:[9]': 400})))
    with pytest.raises(SpecError, match=r'^node1, node2: neighbour table: 200 pods and 2 nodes on one kernel '
                                        r'\(and 400 other pods and 7 other lab hosts there\) need about 1236 ARP'):
        build(pods_file(tmp_path, 200), nodes=crowded)


def test_pods_no_record_names_yet_are_the_cluster_s_own_not_another_lab_s(tmp_path):
    """Regression (issue 20): a run killed mid-way leaves pods on its node
    that no record names (the next run adopts or removes them), and a run
    beside this one starts pods before it records them. They were counted
    as another lab's, and the next run refused a lab that fitted (245 pods
    on a 1,024-entry table: '26 other pods and 2 other lab hosts')."""
    from ansible.module_utils.podnet.plan import capacity
    here = {'kernel': 'k1', 'memory_available': 1 << 40, 'neighbours_max': 1024}
    lab = [node('node%d' % i, '10.11.1.1%d' % i, kernel='k1', neighbours_max=None, pid_namespace='pid:[%d]' % i,
                pods=[]) for i in (1, 2, 3)]
    leaked = capacity.with_this_machine(lab, dict(here, kernel_pods=26, kernel_lab_hosts=5,
                                                  kernel_pods_by_node={'pid:[1]': 26}))
    assert len(build(pods_file(tmp_path, 245), nodes=leaked)['placement']) == 245


def test_the_controller_counts_every_lab_s_pods_and_hosts(tmp_path):
    """Each pause process is counted under its parent's PID namespace: the
    node that started it (its spawner, or its init once that is gone).
    Regression: a pod's own processes named /pause (600 of them) were
    counted as another lab's pods, and every converge was refused."""
    argvs = {'1': [b'/pause'], '2': [b'/pause'], '3': [b'/usr/bin/python3.13', b'/x/podnet-lab-init', b'lab', b'node1'],
             '4': [b'/x/podnet-lab-init', b'scale', b'node1'], '5': [b'sleep', b'infinity'], '6': [b'/bin/cat'],
             '8': [b'/pause'], '10': [b'/pause'], '11': [b'/pause']}
    parents = {'1': '3', '2': '5', '8': '4', '10': '6', '11': '10'}  # 10, 11: a pod's (6 is in no host's namespace)
    for pid, argv in argvs.items():
        (tmp_path / pid / 'ns').mkdir(parents=True)
        (tmp_path / pid / 'cmdline').write_bytes(b'\0'.join(argv) + b'\0')
        (tmp_path / pid / 'stat').write_text('%s (a) b) S %s%s\n' % (pid, parents.get(pid, '0'), ' 0' * 20))
        os.symlink('pid:[%s]' % {'3': 100, '5': 100, '4': 200}.get(pid, 300), tmp_path / pid / 'ns' / 'pid')
    (tmp_path / '7').mkdir()  # gone before its cmdline was read
    (tmp_path / '9').mkdir()  # a pause whose parent is gone before it was read
    (tmp_path / '9' / 'cmdline').write_bytes(b'/pause\0')
    (tmp_path / '9' / 'stat').write_text('9 (cat) S 99%s\n' % (' 0' * 20))
    (tmp_path / 'self').write_text('')
    from ansible.module_utils.podnet.lab.host import lab_processes
    assert lab_processes(str(tmp_path)) == {
        'kernel_pods': 3, 'kernel_lab_hosts': 2, 'kernel_pods_by_node': {'pid:[100]': 2, 'pid:[200]': 1}}


def test_a_node_tells_its_pid_namespace():
    from ansible.module_utils.podnet.plan import capacity
    assert capacity.read_machine()['pid_namespace'] == os.readlink('/proc/self/ns/pid')


def test_pods_already_running_are_in_the_available_memory(tmp_path):
    running = ['default/p%d' % i for i in range(150)]
    lab = [node('node1', '10.11.1.11', kernel='k1', memory_available=10 << 20, pods=running)]
    assert len(build(pods_file(tmp_path, 160), nodes=lab)['placement']) == 160


def write(tmp_path, text, name='x.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return [str(path)]


POD = 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  %scontainers: [%s]\n'
BUSYBOX = '{name: c, image: busybox, command: [sleep, "1"]}'


@pytest.mark.parametrize('length', [100, 250])
def test_long_pod_names_get_a_63_character_hostname(tmp_path, length):
    name = 'p' * (length - 10) + '-' * 5 + 'q' * 5  # a cut at 63 must not end in '-'
    plan = build(write(tmp_path, POD % (name, '', BUSYBOX)))
    pod = pod_of(plan, 'default/' + name)
    assert pod['name'] == name and pod['hostname'] == 'p' * 63


def test_short_names_are_their_own_hostname(manifests):
    assert pod_of(build(manifests), 'shop/pinned')['hostname'] == 'pinned'


def test_each_container_carries_the_capabilities_it_keeps(tmp_path):
    containers = ('{name: a, image: busybox, command: [sleep, "1"], securityContext: '
                  '{capabilities: {drop: [ALL], add: [CAP_NET_BIND_SERVICE]}}}, '
                  '{name: b, image: busybox, command: [sleep, "1"], '
                  'securityContext: {privileged: true}}, ' + BUSYBOX)
    pod = pod_of(build(write(tmp_path, POD % ('caps', '', containers))), 'default/caps')
    assert [c['capabilities'] for c in pod['containers']] == [
        ['NET_BIND_SERVICE'], sorted(caps.NAMES), sorted(caps.RUNTIME_DEFAULT)]


RESOURCES = """apiVersion: v1
kind: Pod
metadata: {name: sized}
spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers:
  - name: a
    image: busybox
    command: [sleep, "1"]
    resources: {limits: {memory: 64Mi, cpu: 500m}, requests: {cpu: 0.1}}
    securityContext: {seccompProfile: {type: RuntimeDefault}}
  - {name: b, image: busybox, command: [sleep, "1"], resources: {requests: {memory: 1G}}}
  - name: c
    image: busybox
    command: [sleep, "1"]
    securityContext: {privileged: true, seccompProfile: {type: RuntimeDefault}}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [%s]
---
apiVersion: v1
kind: Pod
metadata: {name: fixed}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "1"], resources: {limits: {memory: 6Mi, cpu: 1}}}
""" % BUSYBOX


def test_each_container_carries_its_resources_and_seccomp_profile(tmp_path):
    pod = pod_of(build(write(tmp_path, RESOURCES)), 'default/sized')
    assert [(c['resources'], c['seccomp']) for c in pod['containers']] == [
        ({'memory_limit': 64 << 20, 'cpu_limit': 500, 'memory_request': 64 << 20,
          'cpu_request': 100}, 'RuntimeDefault'),
        ({'memory_limit': None, 'cpu_limit': None, 'memory_request': 10 ** 9,
          'cpu_request': None}, 'Unconfined'),
        (dict.fromkeys(('memory_limit', 'cpu_limit', 'memory_request', 'cpu_request')),
         'Unconfined')]  # privileged, whatever its profile


def test_a_container_without_resources_or_seccomp_plans_none_and_runtime_default(tmp_path):
    [plain] = pod_of(build(write(tmp_path, RESOURCES)), 'default/plain')['containers']
    assert plain['resources'] == dict.fromkeys(
        ('memory_limit', 'cpu_limit', 'memory_request', 'cpu_request'))
    assert plain['seccomp'] == 'RuntimeDefault'


def test_each_pod_carries_its_qos_class(tmp_path):
    plan = build(write(tmp_path, RESOURCES))
    assert {name: pod_of(plan, 'default/' + name)['qos'] for name in ('sized', 'plain', 'fixed')} \
        == {'sized': 'Burstable', 'plain': 'BestEffort', 'fixed': 'Guaranteed'}


def test_an_explicit_empty_list_plans_no_pods():
    plan = build([])
    assert plan['pods'] == [] and plan['placement'] == {}
    assert all(node['pods'] == [] for node in plan['nodes'].values())


def test_an_empty_manifest_file_plans_nothing_and_is_refused(tmp_path):
    [path] = write(tmp_path, '\n# all pods removed\n')
    with pytest.raises(SpecError) as info:
        build([path])
    assert str(info.value).startswith('%s: holds no Kubernetes objects' % path)
    assert 'podnet_manifests: []' in str(info.value)


@pytest.mark.parametrize('text, words', [
    (POD % ('web', '', '{name: c, image: nosuch/image}'),
     "Pod default/web: spec.containers[0].image: unknown image 'nosuch/image'"),
    (POD % ('web', 'nodeName: node9\n  ', BUSYBOX),
     "Pod default/web: spec.nodeName: 'node9' is not a node of the inventory"),
    ('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n'
     'spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}\n',
     'NetworkPolicy default/np: spec.ingress[0].ports[0].port: 0 must be a port number'),
    ('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n'
     'spec: {podSelector: {}, ingres: []}\n', 'NetworkPolicy default/np: spec.ingres: unknown'),
])
def test_refusals_after_loading_name_the_file(tmp_path, text, words):
    [path] = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        build([path], unknown_images='refuse')
    assert str(info.value).startswith('%s: %s' % (path, words))


NAMED_PORT = """apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node2
  containers: [{name: c, image: busybox, command: [sleep, "1"], ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-http}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http}]}]
"""


def test_the_plans_cluster_wide_pods_are_what_the_policy_compiler_needs(tmp_path):
    """The plan sends every node the cluster's pods for its policy table: only
    namespace, name, node, labels and ports (a named port resolves from them),
    and for cluster DNS its hostname and subdomain; not the command lines and
    environments of 1,000 pods (issue "Scale")."""
    from test_reset_plan import library
    plan = build(write(tmp_path, NAMED_PORT))
    assert plan['pods'] == [{'namespace': 'default', 'name': 'web', 'node': 'node2',
                             'labels': {'app': 'web'}, 'hostname': 'web', 'subdomain': None,
                             'ports': [{'name': 'http', 'containerPort': 8080, 'protocol': 'TCP'}]}]
    policy = library('podnet_policy')
    chains, rules, isolated, _ = policy.compile_for(
        {'cluster': {'policies': plan['policies'], 'pods': plan['pods'], 'namespaces': plan['namespaces']},
         'running': {'default/web': '10.42.1.2'}, 'node': 'node2'})
    assert isolated['Ingress'] == ['default/web']
    assert any('8080' in str(rule) for rule in rules), rules


def test_the_policy_role_s_json_text_compiles_as_the_plan_s_structures(tmp_path):
    """The role hands every node the plan's policy_cluster and the running
    IPs as JSON text (a string templates per node at a fraction of a
    structure's cost, issue "Scale"): the same table, the same record."""
    from podnet_testlib import action_plugin
    from test_reset_plan import library
    plan = build(write(tmp_path, NAMED_PORT))
    policy, running = library('podnet_policy'), {'default/web': '10.42.1.2'}
    as_structures = policy.compile_for({'cluster': {k: plan[k] for k in ('policies', 'pods', 'namespaces')},
                                        'running': running, 'node': 'node2'})
    as_text = policy.compile_for({'cluster': action_plugin('podnet_cluster').registered(plan)['policy_cluster'],
                                  'running': json.dumps(running), 'node': 'node2'})
    assert as_text == as_structures and as_text[2]['Ingress'] == ['default/web']


@pytest.mark.parametrize('cluster, running, message', [
    ('{"policies": [', '{}', 'cluster: invalid JSON text'),
    ('[]', '{}', 'cluster: must be a dict or its JSON text, got list'),
    ('{"policies": [], "pods": []}', '{}', 'cluster: missing namespaces'),
    ('{"policies": [], "pods": [], "namespaces": {}}', 'x', 'running: invalid JSON text')])
def test_policy_input_that_is_not_the_plan_s_is_refused_naming_the_option(cluster, running, message):
    from test_reset_plan import library
    policy = library('podnet_policy')
    with pytest.raises(SpecError) as refused:
        policy.compile_for({'cluster': cluster, 'running': running, 'node': 'node1'})
    assert str(refused.value).startswith(message)


def test_the_pods_role_s_json_text_is_the_plan_s_pods_checked_as_a_list(tmp_path):
    """The pods role hands each node the registered plan's pods_json (issue
    "Scale"): podnet_pods reads from it the pods the plan placed there, with
    the defaults and checks its argument spec gives a list."""
    from podnet_testlib import action_plugin
    from test_reset_plan import library
    plan = build(write(tmp_path, NAMED_PORT))
    kept, pods = action_plugin('podnet_cluster').registered(plan), library('podnet_pods')
    for name, node in plan['nodes'].items():
        assert pods.pods_of(kept['nodes'][name]['pods_json']) == pods.pods_of(node['pods'])
    placed = pods.pods_of(kept['nodes']['node2']['pods_json'])
    assert [p['name'] for p in placed] == ['web'] and placed[0]['restart_policy'] == 'Always'


def test_the_registered_plan_holds_pods_and_policies_as_text_only(tmp_path):
    """Ansible walks every value a task registers: the plan's pods,
    policies and Services are kept once, as JSON text, and everything else
    as planned."""
    from podnet_testlib import action_plugin
    plan = build(write(tmp_path, NAMED_PORT))
    kept = action_plugin('podnet_cluster').registered(plan)
    assert set(kept) == {'backend', 'nodes', 'placement', 'namespaces', 'policy_cluster', 'workloads', 'ignored',
                         'notes', 'services_json', 'stand_ins'}
    assert json.loads(kept['services_json']) == plan['services']
    for name, node in plan['nodes'].items():
        assert kept['nodes'][name] == dict({k: v for k, v in node.items() if k != 'pods'},
                                           pods_json=kept['nodes'][name]['pods_json'])
    assert json.loads(kept['policy_cluster']) == {k: plan[k] for k in ('policies', 'pods', 'namespaces')}
    assert kept['placement'] == plan['placement'] and kept['backend'] == plan['backend']


def test_the_plan_says_which_pods_each_workload_keeps_and_names_what_it_ignores(tmp_path):
    from podnet_testlib import action_plugin
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'web'},
                  'spec': {'replicas': 2, 'selector': {'matchLabels': {'app': 'web'}},
                           'template': {'metadata': {'labels': {'app': 'web'}},
                                        'spec': {'containers': [{'name': 'web', 'image': 'kennethreitz/httpbin'}]}}}}
    config = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'settings'}}
    plan = build(write(tmp_path, yaml.safe_dump_all([deployment, config])))
    [(owner, pods)] = plan['workloads'].items()
    assert owner == 'Deployment default/web' and len(pods) == 2 and set(pods) <= set(plan['placement'])
    assert plan['ignored'] == ['ConfigMap default/settings']
    assert action_plugin('podnet_cluster').said(plan) == [
        'podnet: ignored 1 object podnet does not model: ConfigMap default/settings']


@pytest.mark.parametrize('text, message', [
    ('[{"namespace": "default"', 'pods: invalid JSON text'),
    ('{"namespace": "default"}', 'pods: must be a list or its JSON text, got dict'),
    ('["web"]', 'pods[0]: must be a dict, got str'),
    ('[{"namespace": "default", "name": "web"}]', 'pods[0] (default/web): missing required arguments: containers'),
    ('[{"namespace": "default", "name": "web", "containers": []}, '
     '{"namespace": "default", "name": "db", "containers": [], "restart_policy": "Sometimes"}]',
     'pods[1] (default/db): value of restart_policy must be one of'),
    ('[{"namespace": "default", "name": "web", "containers": [], "bogus": 1}]',
     'pods[0] (default/web): unsupported parameter bogus.'),
    ('[{"namespace": "default", "name": "web", "containers": [{"name": "c", "argv": []}]}]',
     'pods[0] (default/web): containers[0] (c): argv is empty'),
    ('[{"namespace": "default", "name": "web", "containers": [{"name": "c", "argv": ["true"], '
     '"mounts": [{"source": "../../etc", "target": "/x"}]}]}]',
     "pods[0] (default/web): containers[0] (c): mounts[0].source: '../../etc' must be a folder within state_dir"),
    ('[{"namespace": "default", "name": "web", "containers": [{"name": "c", "argv": ["true"], '
     '"mounts": [{"source": "/etc", "target": "/x"}]}]}]',
     'pods[0] (default/web): containers[0] (c): mounts[0].source'),
    ('[{"namespace": "default", "name": "web", "containers": [{"name": "c", "argv": ["true"], '
     '"mounts": [{"source": "dns", "target": "zone"}]}]}]',
     "pods[0] (default/web): containers[0] (c): mounts[0].target: 'zone' must be an absolute path"),
    ('[{"namespace": "default", "name": "web", "dns": {"policy": "Sometimes"}, "containers": []}]',
     'pods[0] (default/web): value of policy must be one of')])
def test_pods_text_that_is_not_a_list_of_pods_is_refused_naming_the_pod(text, message):
    from test_reset_plan import library
    with pytest.raises(SpecError) as refused:
        library('podnet_pods').pods_of(text)
    assert str(refused.value).startswith(message)


def test_the_plan_action_names_each_node_and_takes_its_pod_cidr_variable():
    """The cluster role passes each node's facts by inventory name; the pod
    CIDR comes from the node's own variable podnet_pod_cidr, if it has one."""
    from podnet_testlib import action_plugin
    facts = {name: {'underlay_ip': ip} for name, ip in (('node2', '10.11.1.12'), ('node1', '10.11.1.11'))}
    hostvars = {'node1': {'podnet_pod_cidr': '10.42.9.0/24'}, 'node2': {}}
    assert action_plugin('podnet_cluster').described(facts, hostvars) == [
        {'underlay_ip': '10.11.1.12', 'name': 'node2', 'explicit_pod_cidr': None},
        {'underlay_ip': '10.11.1.11', 'name': 'node1', 'explicit_pod_cidr': '10.42.9.0/24'}]


ROOT_DIR = Path(__file__).resolve().parents[2]
CLUSTER_DNS = str(ROOT_DIR / 'roles' / 'cluster' / 'files' / 'cluster-dns.yaml')
COREDNS = 'rancher/mirrored-coredns-coredns'
WITH_DNS = dict(CATALOG, **{COREDNS: {'entrypoint': [PYTHON, TOOLS + '/podnet-dns'], 'cmd': []}})


def planned_pods(plan):
    return {'%s/%s' % (p['namespace'], p['name']): p for node in plan['nodes'].values() for p in node['pods']}


def test_cluster_dns_runs_coredns_in_kube_system_and_it_alone_sees_the_zone(manifests):
    pods = planned_pods(cluster.build(manifests, NODES, '10.42.0.0/16', 'vxlan', WITH_DNS, CLUSTER_DNS))
    [key] = [k for k in pods if k.startswith('kube-system/coredns-')]
    coredns = pods[key]
    [container] = coredns['containers']
    assert container['argv'] == [PYTHON, TOOLS + '/podnet-dns']
    assert container['mounts'] == [{'source': 'dns', 'target': '/var/lib/podnet-dns'}]
    assert container['capabilities'] == ['NET_BIND_SERVICE'] and container['no_new_privs']
    assert coredns['labels']['k8s-app'] == 'kube-dns' and coredns['dns']['policy'] == 'Default'
    for other in (p for k, p in pods.items() if k != key):
        assert all(c['mounts'] == [] for c in other['containers']), other['name']
        assert other['dns'] == {'policy': 'ClusterFirst', 'nameservers': [], 'searches': [], 'options': [],
                                'cluster_dns': '10.43.0.10', 'domain': 'cluster.local'}


def test_a_user_s_copy_of_the_coredns_deployment_mounts_nothing(tmp_path):
    copy = (tmp_path / 'mine.yaml')
    copy.write_text(open(CLUSTER_DNS).read().replace('name: coredns', 'name: my-dns').replace(
        'name: kube-dns', 'name: my-dns').replace('clusterIP: 10.43.0.10', ''))  # kube-dns's, refused twice
    pods = planned_pods(cluster.build([str(copy)], NODES, '10.42.0.0/16', 'vxlan', WITH_DNS, CLUSTER_DNS))
    mine = [p for k, p in pods.items() if k.startswith('kube-system/my-dns-')]
    assert mine and mine[0]['containers'][0]['mounts'] == []


def test_without_cluster_dns_there_is_no_coredns_and_pods_have_no_cluster_nameserver(manifests):
    pods = planned_pods(build(manifests))
    assert not [k for k in pods if k.startswith('kube-system/')]
    assert {p['dns']['cluster_dns'] for p in pods.values()} == {None}


def test_the_plan_s_cluster_dns_address_is_the_kube_dns_service_s():
    [service] = [d for d in yaml.safe_load_all(open(CLUSTER_DNS)) if d['kind'] == 'Service']
    assert service['spec']['clusterIP'] == cluster.CLUSTER_DNS_IP
    assert service['metadata']['name'] == 'kube-dns' and service['metadata']['namespace'] == 'kube-system'


def test_the_role_s_catalog_runs_podnet_dns_for_coredns_s_image():
    defaults = yaml.safe_load(open(ROOT_DIR / 'roles' / 'cluster' / 'defaults' / 'main.yml'))
    assert defaults['podnet_cluster_dns'] is True
    assert defaults['podnet_images'][COREDNS]['entrypoint'][1].endswith('/podnet-dns')


def test_statefulset_pods_carry_their_subdomain_to_the_node(tmp_path):
    stateful = {'apiVersion': 'apps/v1', 'kind': 'StatefulSet', 'metadata': {'name': 'web'},
                'spec': {'replicas': 2, 'serviceName': 'web', 'selector': {'matchLabels': {'app': 'web'}},
                         'template': {'metadata': {'labels': {'app': 'web'}},
                                      'spec': {'containers': [{'name': 'web', 'image': 'kennethreitz/httpbin'}]}}}}
    pods = planned_pods(build(write(tmp_path, yaml.safe_dump(stateful))))
    assert {(p['hostname'], p['subdomain']) for p in pods.values()} == {('web-0', 'web'), ('web-1', 'web')}


STAND_IN = """apiVersion: v1
kind: Pod
metadata: {name: shop}
spec:
  nodeName: node1
  containers:
  - name: api
    image: myorg/api:1.4
    args: [--listen, ":8080"]
    workingDir: /app
    env: [{name: MODE, value: prod}]
    ports: [{containerPort: 8080}, {containerPort: 53, protocol: UDP}, {containerPort: 9999, protocol: SCTP}]
  - {name: worker, image: myorg/worker}
  - {name: tool, image: myorg/tool, command: [sleep, "1"]}
"""


def test_an_unknown_image_without_command_gets_the_stand_in_on_its_ports(tmp_path):
    plan = build(write(tmp_path, STAND_IN))
    api, worker, tool = pod_of(plan, 'default/shop')['containers']
    agnhost = CATALOG[AGNHOST]['entrypoint']
    assert api['argv'] == agnhost + ['stand-in', '--tcp', '8080', '--udp', '53']
    assert api['stand_in'] is True and api['env'] == {'MODE': 'prod'} and api['working_dir'] is None
    assert worker['argv'] == agnhost + ['stand-in'] and worker['stand_in'] is True
    assert tool['argv'] == ['sleep', '1'] and 'stand_in' not in tool  # a command runs as given
    assert plan['stand_ins'] == {'myorg/api:1.4': ['default/shop/api'], 'myorg/worker': ['default/shop/worker']}


def test_the_plan_notes_the_sctp_ports_a_stand_in_skips_and_says_what_it_stood_in_for(tmp_path):
    from podnet_testlib import action_plugin
    plan = build(write(tmp_path, STAND_IN))
    assert plan['notes'] == {'Pod default/shop': [
        'container api: its stand-in does not serve SCTP port 9999 (the nodes have no SCTP sockets)']}
    assert action_plugin('podnet_cluster').said(plan)[0] == (
        'podnet: stood in for 2 images podnet cannot run (agnhost netexec on their containerPorts): '
        'myorg/api:1.4 (default/shop/api), myorg/worker (default/shop/worker)')


def test_a_plan_without_stand_ins_says_nothing_of_them(manifests):
    from podnet_testlib import action_plugin
    plan = build(manifests)
    said = action_plugin('podnet_cluster').said(plan)
    assert plan['stand_ins'] == {} and not any('stood in' in line for line in said)


def test_unknown_images_refuse_keeps_the_refusal(tmp_path):
    with pytest.raises(SpecError) as refused:
        build(write(tmp_path, STAND_IN), unknown_images='refuse')
    assert "Pod default/shop: spec.containers[0].image: unknown image 'myorg/api:1.4' and no command" in str(
        refused.value)


def test_a_stand_in_needs_agnhost_in_the_catalog(tmp_path):
    catalog = {k: v for k, v in CATALOG.items() if k != AGNHOST}
    with pytest.raises(SpecError) as refused:
        cluster.build(write(tmp_path, STAND_IN), NODES, '10.42.0.0/16', 'vxlan', catalog)
    assert ("spec.containers[0].image: unknown image 'myorg/api:1.4', and the image catalog has no %s" % AGNHOST
            in str(refused.value))


def test_a_stand_in_container_passes_the_pods_module_s_checks(tmp_path):
    from podnet_testlib import action_plugin
    from test_reset_plan import library
    kept = action_plugin('podnet_cluster').registered(build(write(tmp_path, STAND_IN)))
    [shop] = library('podnet_pods').pods_of(kept['nodes']['node1']['pods_json'])
    assert [c['stand_in'] for c in shop['containers']] == [True, True, False]
