"""A node dies: its init is killed (the VM crashed), or its sshd is (the VM
runs, nobody gets in). Both at once, on two nodes of one fresh lab:
- the conformance check that needs the node fails;
- `lab.yml --check` reports the node as a change;
- `site.yml` fails clearly: a line names the node and tells to run
  playbooks/lab.yml (issue 7 defect 8: today a Jinja error);
- `lab.yml` then `site.yml` heal it: the check passes again, every seed
  pod runs with its netns and address, and a second run changes nothing.
"""
import os
import re
import signal

import pytest
from ansible.module_utils.podnet.lab.host import running_hosts
from conformance import test_node_base as node_base
from faults.conftest import LAB, changed_output, errors, recap, state_problems, verdict
from integration.conftest import playbook

pytestmark = pytest.mark.lab

SEED_PODS = ['multi-container-pod', 'netexec-a', 'netexec-b', 'netexec-c', 'netexec-d']


def kill_init(cluster, node):
    os.kill(running_hosts(LAB)[node], signal.SIGKILL)


def kill_sshd(cluster, node):
    """Every sshd of the node, its sessions too (else the controller's SSH
    master would keep working), from the controller: a kill sent over the
    node's own SSH raced with the session it ended."""
    pid_ns = os.readlink('/proc/%d/ns/pid' % running_hosts(LAB)[node])
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/comm' % pid) as f:
                if f.read().strip() == 'sshd' and os.readlink('/proc/%s/ns/pid' % pid) == pid_ns:
                    os.kill(int(pid), signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            continue


DEATHS = {'node2': ('kill a node\'s init', kill_init), 'node3': ('kill a node\'s sshd', kill_sshd)}


def reachable(cluster, node):
    """None if node1 reaches the node's underlay and the node answers, else why."""
    try:
        node_base.test_every_node_reaches_every_other_over_the_underlay(
            {'node1': cluster.hosts['node1']}, {'node1': cluster.underlay('node1'),
                                                node: cluster.underlay(node)})
        node_base.test_every_node_forwards_inside_its_own_namespace({node: cluster.hosts[node]})
    except Exception as broken:  # noqa: BLE001 - testinfra raises more than AssertionError
        return '%s: %s' % (type(broken).__name__, str(broken)[:300])
    return None


def lab_yml(cluster, *args):
    return playbook(cluster.lab.inventory, 'playbooks/lab.yml', *args, check=False)


def lab_reports(done, node):
    """The lab provider runs once for all nodes (on the first): its diff
    must show the node going from broken to running, and its plan the
    action that takes it there."""
    text = ''.join(changed_output(done).values())
    return sum(r['changed'] for r in recap(done).values()) > 0 and bool(
        re.search(r"^-%s: '?(broken|absent)" % node, text, re.M) and re.search(r'^\+%s: running' % node, text, re.M)
        and re.search(r'^create %s: ' % node, text, re.M))


def names_node_and_remedy(done, node):
    return any(node in line and 'playbooks/lab.yml' in line for line in done.stdout.splitlines())


@pytest.fixture(scope='module')
def deaths(cluster):
    first = cluster.site()
    assert first.returncode == 0, first.stdout[-3000:]
    found = {node: {'baseline': reachable(cluster, node)} for node in DEATHS}
    for node, (_, kill) in DEATHS.items():
        kill(cluster, node)
    for node in DEATHS:
        found[node]['in_place'] = reachable(cluster, node)
    check, site = lab_yml(cluster, '--check', '--diff'), cluster.site()
    heal_lab = lab_yml(cluster)
    heal, stable = cluster.site(), cluster.site()
    for node, result in found.items():
        result.update(
            detected=lab_reports(check, node),
            site=(site.returncode, names_node_and_remedy(site, node)),
            healed=reachable(cluster, node), heal_rc=(heal_lab.returncode, heal.returncode),
            stable=recap(stable).get(node, {}), pods=state_problems(cluster, SEED_PODS))
        result['site_output'] = errors(site.stdout)
        tally(node, result)
    return found


def tally(node, result):
    stable = result['stable']
    verdict(DEATHS[node][0], caught=result['in_place'] is not None, detected=result['detected'],
            clear=result['site'][0] != 0 and result['site'][1], healed=result['healed'] is None,
            stable=stable.get('changed') == 0 and not stable.get('failed'))


@pytest.mark.parametrize('node', sorted(DEATHS), ids=[DEATHS[n][0] for n in sorted(DEATHS)])
def test_a_dead_node_fails_clearly_and_is_healed_by_lab_and_site(deaths, node):
    found = deaths[node]
    assert found['baseline'] is None, found['baseline']
    assert found['in_place'], 'the node still answers with the fault in place'
    assert found['detected'], 'lab.yml --check did not report %s' % node
    rc, named = found['site']
    assert rc != 0 and named, ('site.yml rc=%s; no line names %s and playbooks/lab.yml:\n%s'
                               % (rc, node, found['site_output']))
    assert found['heal_rc'] == (0, 0), 'lab.yml, site.yml rc: %s' % (found['heal_rc'],)
    assert found['healed'] is None, found['healed']
    assert found['pods'] == [], found['pods']
    stable = found['stable']
    assert stable.get('changed') == 0 and not stable.get('failed'), 'second run: %s' % stable
