"""probe.yml judges the kernel against the NetworkPolicy model of what the
nodes enforce (issue 9, "probe with reasons"): each denied cell is printed
with the policies that isolate its pod, probe_expect=model passes on a
converged cluster, and once a node's policy table is gone it fails naming
every cell that now passes and the policy that should have stopped it.
On the 4-node multirack lab, with the netpol model and two policies."""
import json

import pytest
import yaml
from integration.conftest import playbook

pytestmark = pytest.mark.lab

POLICIES = [
    {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
     'metadata': {'name': 'deny-ingress', 'namespace': 'x'},
     'spec': {'podSelector': {}, 'policyTypes': ['Ingress']}},
    {'apiVersion': 'networking.k8s.io/v1', 'kind': 'NetworkPolicy',
     'metadata': {'name': 'a-from-y', 'namespace': 'x'},
     'spec': {'podSelector': {'matchLabels': {'pod': 'a'}},
              'ingress': [{'from': [{'namespaceSelector': {'matchLabels': {'ns': 'y'}}}],
                           'ports': [{'port': 80}]}]}}]
PROBE = ('playbooks/probe.yml', '-e', 'probe_ports=80', '-e', 'probe_protocols=TCP')


@pytest.fixture
def enforced(multirack, tmp_path):
    manifest = tmp_path / 'policies.yaml'
    manifest.write_text(yaml.safe_dump_all(POLICIES))
    playbook(multirack.inventory, 'playbooks/site.yml', '-e', json.dumps(
        {'podnet_manifests': ['manifests/netpol-model', str(manifest)]}))
    try:
        yield multirack
    finally:
        playbook(multirack.inventory, 'playbooks/site.yml')  # the seed again, for the other tests


def x_a_node(lab):
    for name, host in lab.hosts.items():
        if host.run('test -e /var/lib/podnet/pods/x_a.json').rc == 0:
            return host
    raise AssertionError('x/a runs nowhere')


def test_denials_carry_their_reason_and_the_model_holds(enforced):
    done = playbook(enforced.inventory, *PROBE, '-e', 'probe_expect=model')
    assert 'X ingress: isolated by x/a-from-y, x/deny-ingress, no rule allows: ' \
           'x/b->x/a x/c->x/a z/a->x/a z/b->x/a z/c->x/a' in done.stdout
    assert 'X ingress: isolated by x/deny-ingress, no rule allows: x/a->x/b' in done.stdout
    assert 'disagree' not in done.stdout


def test_a_closed_port_is_reached_not_a_disagreement(enforced):
    """Port 82, on which no pod listens: where the policies allow, the pod
    answers with a reset, which the model holds as allowed (podnet drops
    and never rejects); where they deny, the probe times out as the model
    says. It used to fail with 'the kernel and the policy model disagree'."""
    done = playbook(enforced.inventory, 'playbooks/probe.yml', '-e', 'probe_ports=82',
                    '-e', 'probe_protocols=TCP', '-e', 'probe_expect=model')
    assert 'X refused: the pod was reached, nothing listens on the port: ' in done.stdout
    assert 'X ingress: isolated by x/deny-ingress, no rule allows: x/a->x/b' in done.stdout
    assert 'disagree' not in done.stdout


def test_a_lost_policy_table_is_a_disagreement_named_cell_by_cell(enforced):
    x_a_node(enforced).check_output('nft delete table ip podnet-policy')
    done = playbook(enforced.inventory, *PROBE, '-e', 'probe_expect=model', check=False)
    assert done.returncode != 0
    assert '5 cells differ from the policy model' in done.stdout
    for source in ('x/b', 'x/c', 'z/a', 'z/b', 'z/c'):
        assert ('TCP/80 %s -> x/a: expected denied (ingress of x/a: isolated by x/a-from-y, '
                'x/deny-ingress, no rule allows), got allowed' % source) in done.stdout
    warned = playbook(enforced.inventory, *PROBE)
    assert warned.returncode == 0 and 'the kernel and the policy model disagree' in warned.stdout + warned.stderr


def sampled(done):
    """The pods a sampled probe says it picked, and its line."""
    line = next(entry for entry in done.stdout.splitlines() if 'Probed a sample of' in entry)
    return line.split('): ', 1)[1].split('"')[0].split(), line


def test_a_sample_probes_its_pods_among_themselves_and_a_seed_repeats_it(enforced, tmp_path):
    output = tmp_path / 'probe.json'
    first = playbook(enforced.inventory, *PROBE, '-e', 'probe_sample=4', '-e', 'probe_expect=model',
                     '-e', 'probe_output=%s' % output)
    pods, line = sampled(first)
    assert len(pods) == 4 and 'of the 9 pods (seed 0)' in line, line
    matrix = json.loads(output.read_text())[0]['allowed']
    assert sorted(matrix) == pods and all(sorted(row) == pods for row in matrix.values())
    assert sampled(playbook(enforced.inventory, *PROBE, '-e', 'probe_sample=4'))[0] == pods
    other = playbook(enforced.inventory, *PROBE, '-e', 'probe_sample=4', '-e', 'probe_seed=7')
    assert len(sampled(other)[0]) == 4 and sampled(other)[0] != pods


def test_a_sample_that_is_not_a_count_is_refused(enforced):
    done = playbook(enforced.inventory, *PROBE, '-e', 'probe_sample=0', check=False)
    assert done.returncode != 0
    assert "probe_sample must be a number of pods (1 or more), not '0'" in done.stdout
