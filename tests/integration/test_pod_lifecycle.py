"""Pods follow the manifests: a pod removed from them is deleted with its
sandbox, veth, address and processes; a pod added back gets a fresh
sandbox without leaking addresses; bad manifests change nothing."""
import json

import pytest
from integration.conftest import playbook, recap, running_lab

pytestmark = pytest.mark.lab

EXTRA = {'apiVersion': 'v1', 'kind': 'Pod',
         'metadata': {'name': 'extra', 'namespace': 'default'},
         'spec': {'nodeName': 'node2', 'containers': [
             {'name': 'sleeper', 'image': 'busybox', 'command': ['sleep', '3600']}]}}


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab')


def converge(lab, *extra_files, check=True, **variables):
    manifests = ['manifests/seed'] + [str(f) for f in extra_files]
    return playbook(lab.inventory, 'playbooks/site.yml', '-e',
                    json.dumps(dict(variables, podnet_manifests=manifests)), check=check)


def pod_record(host, name):
    found = host.run('cat /var/lib/podnet/pods/default_%s.json', name)
    return json.loads(found.stdout) if found.rc == 0 else None


def addresses_in_use(host):
    return sorted(host.check_output("sh -c 'ls /var/lib/podnet/ipam/*/ | grep -v last_reserved'").split())


def test_a_removed_pod_leaves_nothing_and_comes_back_fresh(lab, tmp_path):
    extra = tmp_path / 'extra.yaml'
    extra.write_text(json.dumps(EXTRA))
    node2 = lab.hosts['node2']
    converge(lab)
    baseline = addresses_in_use(node2)
    converge(lab, extra)
    first = pod_record(node2, 'extra')
    assert first and first['ip'] in addresses_in_use(node2)
    sleeper = str(first['containers']['sleeper']['pid'])
    converge(lab)
    assert pod_record(node2, 'extra') is None
    assert first['netns'] not in node2.check_output('ip netns list')
    assert node2.run('ip link show %s', first['veth']).rc != 0
    assert node2.run('test -e /proc/%s', sleeper).rc != 0
    assert addresses_in_use(node2) == baseline
    converge(lab, extra)
    second = pod_record(node2, 'extra')
    assert second['netns'] != first['netns'] and len(addresses_in_use(node2)) == len(baseline) + 1


def test_a_bad_manifest_fails_before_any_change(lab, tmp_path):
    converge(lab)
    before = {n: h.check_output('ip netns list') for n, h in lab.hosts.items()}
    bad = tmp_path / 'bad.yaml'
    bad.write_text(json.dumps(dict(EXTRA, spec={'containers': [{'name': 'x', 'image': 'no/such'}]})))
    done = converge(lab, bad, check=False, podnet_unknown_images='refuse')
    assert done.returncode != 0
    assert "spec.containers[0].image: unknown image 'no/such' and no command" in done.stdout
    assert {n: h.check_output('ip netns list') for n, h in lab.hosts.items()} == before


def test_a_variable_that_does_not_fit_a_role_fails_before_any_change(lab):
    """site.yml checks every role's variables on every node at once (the
    roles' own argument specs), before any node task."""
    converge(lab)
    before = {n: h.check_output('ip -o link') for n, h in lab.hosts.items()}
    done = playbook(lab.inventory, 'playbooks/site.yml', '-e', 'podnet_backend=gre', check=False)
    assert done.returncode != 0
    for node in lab.hosts:
        assert '%s: role backend: value of podnet_backend must be one of: vxlan, host-gw, got: gre' % node \
            in done.stdout
    assert 'TASK [node : ' not in done.stdout
    assert {n: h.check_output('ip -o link') for n, h in lab.hosts.items()} == before


def test_a_finished_never_restart_container_stays_finished(lab, tmp_path):
    oneshot = tmp_path / 'oneshot.yaml'
    oneshot.write_text(json.dumps(dict(EXTRA, metadata={'name': 'oneshot', 'namespace': 'default'},
                                       spec={'nodeName': 'node2', 'restartPolicy': 'Never',
                                             'containers': [{'name': 'job', 'image': 'busybox',
                                                             'command': ['sh', '-c', 'echo done']}]})))
    converge(lab, oneshot)
    assert pod_record(lab.hosts['node2'], 'oneshot') is not None
    again = converge(lab, oneshot)
    assert 'node2                      : ok=' in again.stdout
    assert [line for line in again.stdout.splitlines() if line.startswith('node2 ')][0].split()[3] == 'changed=0'
    log = lab.hosts['node2'].check_output('cat /var/lib/podnet/pods/default_oneshot/job.log')
    assert log == 'done'


def pod_manifest(tmp_path, name, node, command):
    path = tmp_path / ('%s.yaml' % name[:20])
    path.write_text(json.dumps(dict(EXTRA, metadata={'name': name, 'namespace': 'default'},
                                    spec={'nodeName': node, 'containers': [
                                        {'name': 'main', 'image': 'busybox', 'command': command}]})))
    return path


def test_a_long_pod_name_gets_the_kubernetes_hostname(lab, tmp_path):
    """Regression: a valid 100-character pod name failed with
    `sethostname: Invalid argument` on its node."""
    name = 'long-' + 'x' * 95
    converge(lab, pod_manifest(tmp_path, name, 'node3', ['sleep', '3600']))
    record = pod_record(lab.hosts['node3'], name)
    inside = lab.hosts['node3'].check_output('nsenter -t %s -u hostname', str(record['pause']['pid']))
    assert inside == name[:63]


def test_a_pod_failing_on_one_node_stops_the_play_with_its_reason(lab, tmp_path):
    """Regression: the policy task then failed on every node with
    `object of type 'dict' has no attribute 'pods'`."""
    done = converge(lab, pod_manifest(tmp_path, 'broken', 'node2', ['/no/such/program']), check=False)
    assert done.returncode != 0
    assert 'default/broken' in done.stdout and '/no/such/program' in done.stdout
    assert "has no attribute 'pods'" not in done.stdout
    assert pod_record(lab.hosts['node2'], 'broken') is None
    converge(lab)


def test_a_killed_container_is_seen_by_check_and_restarted(lab):
    """Regression: after `kill -9` of a container every run failed with
    `Module failed: 'key'` (records read from disk lacked it)."""
    converge(lab)
    node1 = lab.hosts['node1']
    before = pod_record(node1, 'multi-container-pod')
    node1.run('kill -9 %s', str(before['containers']['curl']['pid']))
    checked = playbook(lab.inventory, 'playbooks/site.yml', '--check', '--diff')
    assert 'restart default/multi-container-pod: container curl exited' in checked.stdout
    converge(lab)
    after = pod_record(node1, 'multi-container-pod')
    assert after['containers']['curl']['pid'] != before['containers']['curl']['pid']
    assert node1.run('test -d /proc/%s', str(after['containers']['curl']['pid'])).rc == 0
    assert after['netns'] == before['netns']  # restarted in place, not recreated


def guarded_pair(client_command):
    """A pod on node1 that only pods labelled role=client may reach, and
    such a client on node2: node1's table holds the client's address."""
    policy = {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
              'metadata': {'name': 'only-clients', 'namespace': 'default'},
              'spec': {'podSelector': {'matchLabels': {'app': 'guarded'}}, 'policyTypes': ['Ingress'],
                       'ingress': [{'from': [{'podSelector': {'matchLabels': {'role': 'client'}}}]}]}}
    guarded = dict(EXTRA, metadata={'name': 'guarded', 'namespace': 'default', 'labels': {'app': 'guarded'}},
                   spec={'nodeName': 'node1', 'containers': EXTRA['spec']['containers']})
    client = dict(EXTRA, metadata={'name': 'client', 'namespace': 'default', 'labels': {'role': 'client'}},
                  spec={'nodeName': 'node2', 'containers': [
                      {'name': 'client', 'image': 'busybox', 'command': client_command}]})
    return '\n---\n'.join(json.dumps(o) for o in (policy, guarded, client))


def test_check_mode_names_the_tables_a_recreated_pod_changes_on_other_nodes(lab, tmp_path):
    """Regression (issue 21): --check showed a recreate on the pod's own node
    only; the other nodes' policy tables, which name the pod's address,
    changed in the real run alone."""
    pair = tmp_path / 'pair.yaml'
    pair.write_text(guarded_pair(['sleep', '3600']))
    converge(lab, pair, check=True)
    pair.write_text(guarded_pair(['sleep', '3601']))  # new containers: a new sandbox, a new address
    checked = playbook(lab.inventory, 'playbooks/site.yml', '--check', '--diff', '-e',
                       json.dumps({'podnet_manifests': ['manifests/seed', str(pair)]}))
    assert 'recreate default/client: containers changed' in checked.stdout
    assert 'follow ip podnet-policy: default/client gets a new address in the real run' in checked.stdout
    assert recap(checked)['node1']['changed'] >= 1
    done = converge(lab, pair)
    assert recap(done)['node1']['changed'] >= 1  # the table did follow
    # every node's record of what its table enforces names the new address:
    # --check said which nodes change, and they are the ones that did
    assert {n: r['changed'] > 0 for n, r in recap(checked).items()} == \
        {n: r['changed'] > 0 for n, r in recap(done).items()}
    assert recap(converge(lab, pair))['node1']['changed'] == 0
    converge(lab)
