"""Pods follow the manifests: a pod removed from them is deleted with its
sandbox, veth, address and processes; a pod added back gets a fresh
sandbox without leaking addresses; bad manifests change nothing."""
import json

import pytest
from integration.conftest import playbook, running_lab

pytestmark = pytest.mark.lab

EXTRA = {'apiVersion': 'v1', 'kind': 'Pod',
         'metadata': {'name': 'extra', 'namespace': 'default'},
         'spec': {'nodeName': 'node2', 'containers': [
             {'name': 'sleeper', 'image': 'busybox', 'command': ['sleep', '3600']}]}}


@pytest.fixture(scope='module')
def lab():
    yield from running_lab('lab', 'lab')


def converge(lab, *extra_files, check=True):
    manifests = ['manifests/seed'] + [str(f) for f in extra_files]
    return playbook(lab.inventory, 'playbooks/site.yml', '-e',
                    json.dumps({'podnet_manifests': manifests}), check=check)


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
    done = converge(lab, bad, check=False)
    assert done.returncode != 0
    assert "spec.containers[0].image: unknown image 'no/such' and no command" in done.stdout
    assert {n: h.check_output('ip netns list') for n, h in lab.hosts.items()} == before


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
