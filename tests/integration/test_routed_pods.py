"""Pods wired by Debian's ptp chain (podnet_cni=ptp) sit on routed veths
that no bridge holds, so the bridge-family source guard never sees them.

Regression (issue 24, make grade-cni's ptp column: pod isolation 3/8): a
ptp pod that took another pod's address got the reply, on one node and
across nodes, and a ptp pod's VXLAN datagram to another node's underlay
was unwrapped there, because the isolation and VXLAN guards keyed on cni0.
The conformance suite's pod isolation checks run unchanged against it, on
the 4-node multirack lab (vxlan between racks)."""
import re
import subprocess

import pytest
from integration.conftest import VENV_BIN, playbook, pod_records
from podnet_testlib import ROOT

pytestmark = pytest.mark.lab

REGRESSIONS = ('test_a_pod_that_takes_another_pods_address_gets_nothing_through[same node]',
               'test_a_pod_that_takes_another_pods_address_gets_nothing_through[across nodes]',
               'test_a_pod_cannot_inject_vxlan_into_any_node')


@pytest.fixture(scope='module')
def routed(multirack):
    """The multirack lab with its pods wired by ptp; native again after."""
    playbook(multirack.inventory, 'playbooks/site.yml', '-e', 'podnet_cni=ptp')
    try:
        yield multirack
    finally:
        playbook(multirack.inventory, 'playbooks/site.yml')


def test_every_pod_is_a_routed_veth(routed):
    for name, host in routed.hosts.items():
        for record in pod_records(host):
            assert record.get('cni', {}).get('name') == 'podnet-ptp', (name, record.get('name'))
            master = host.check_output('ip -o link show dev %s' % record['veth'])
            assert ' master ' not in master, (name, master)


def test_routed_pods_pass_the_pod_isolation_checks(routed):
    done = subprocess.run(
        [str(VENV_BIN / 'python'), '-m', 'pytest', '-p', 'no:cacheprovider', '-rA',
         'tests/conformance/test_pod_isolation.py', '--ansible-inventory', str(routed.inventory)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    passed = set(re.findall(r'^PASSED \S+::(.+)$', done.stdout, re.M))
    assert set(REGRESSIONS) <= passed, done.stdout[-4000:]
