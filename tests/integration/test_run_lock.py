"""Two site.yml runs against one lab at once do not interleave: the second
waits for the first (podnet_run_lock), or fails naming it; either way no
pod is lost (issue 7, defect 4, "two concurrent runs"). On multirack."""
import re

import pytest
from integration.conftest import finish, playbook, pod_records, start_playbook

pytestmark = pytest.mark.lab

HELD = 'another ansible-playbook (pid'


def pods(lab):
    """{node: {namespace/name: (ip, netns, netns present)}} from the nodes'
    records: a pod lost or recreated by the runs changes its entry."""
    found = {}
    for name, host in lab.hosts.items():
        present = host.check_output('ip netns list')
        found[name] = {'%s/%s' % (r['namespace'], r['name']): (r['ip'], r['netns'],
                                                               r['netns'] in present)
                       for r in pod_records(host)}
    return found


def test_two_concurrent_site_runs_wait_for_each_other_and_lose_no_pod(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    before = pods(multirack)
    assert all(before.values())
    runs = [start_playbook(multirack.inventory, 'playbooks/site.yml', '-v') for _ in range(2)]
    done = [finish(run, check=False) for run in runs]
    for run in done:
        assert run.returncode == 0 or HELD in run.stdout, run.stdout[-3000:]
    assert any(run.returncode == 0 for run in done)
    waited = [int(w) for run in done for w in re.findall(r'"waited_for": (\d+)', run.stdout)]
    assert waited == [runs[0].pid] or waited == [runs[1].pid]
    assert pods(multirack) == before
    again = playbook(multirack.inventory, 'playbooks/site.yml', '--check')
    recap = again.stdout.split('PLAY RECAP')[1]
    assert recap.count('changed=0') == len(multirack.hosts), recap
