"""Pods never reach the controller or the management network (issue 7,
defect 5), while their own node, other pods and the outside stay reachable
(G1, G4, G6). On the 4-node multirack lab: mgmt 172.30.1.0/24 with the
controller at 172.30.1.1, underlay on routed racks, outside 203.0.113.10."""
import pytest
from integration.conftest import playbook, pod_records

pytestmark = pytest.mark.lab

CONTROLLER = '172.30.1.1'
OUTSIDE = '203.0.113.10'


def pod_ips(host):
    return [(r['netns'], r['ip']) for r in pod_records(host)]


def reaches(host, netns, address):
    """One ping from the pod's sandbox; the isolation drops, so no answer."""
    return host.run('ip netns exec %s ping -c1 -W1 %s', netns, address).rc == 0


@pytest.fixture(scope='module')
def converged(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    return multirack


def test_a_pod_cannot_reach_the_controller_or_any_mgmt_address(converged):
    node1 = converged.hosts['node1']
    netns, _ = pod_ips(node1)[0]
    mgmt = [v['ansible_host'] for v in converged.vars.values()]
    reached = [a for a in [CONTROLLER] + mgmt if reaches(node1, netns, a)]
    assert reached == []


def test_a_pod_still_reaches_its_node_other_pods_and_the_outside(converged):
    node1 = converged.hosts['node1']
    netns, _ = pod_ips(node1)[0]
    others = [ip for name, host in converged.hosts.items() if name != 'node1'
              for _, ip in pod_ips(host)]
    wanted = [converged.vars['node1']['podnet_underlay_ip'], '10.42.0.1', OUTSIDE] + others
    assert others and [a for a in wanted if not reaches(node1, netns, a)] == []


def test_isolation_is_idempotent_and_check_mode_sees_a_flushed_table(converged):
    node1 = converged.hosts['node1']
    again = playbook(converged.inventory, 'playbooks/site.yml', '--check', '--diff')
    assert 'podnet-isolation: missing' not in again.stdout
    assert 'podnet-isolation: rules differ' not in again.stdout
    node1.check_output('nft delete table inet podnet-isolation')
    seen = playbook(converged.inventory, 'playbooks/site.yml', '--check', '--diff')
    assert 'set_table inet podnet-isolation: missing' in seen.stdout
    playbook(converged.inventory, 'playbooks/site.yml')
    assert node1.run('nft list table inet podnet-isolation').rc == 0
