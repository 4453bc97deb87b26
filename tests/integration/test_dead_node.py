"""A node whose init died makes site.yml stop with a message that names it
and says what to do (issue 7, defect 8), instead of a Jinja error; lab.yml
then site.yml bring it back. On the 4-node multirack lab."""
import os
import signal

import pytest
from integration.conftest import lab_inits, playbook

pytestmark = pytest.mark.lab


def test_a_dead_node_is_named_and_healed_by_lab_then_site(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    [pid] = [pid for pid, argv in lab_inits(multirack.name) if b'node2' in argv]
    os.kill(pid, signal.SIGKILL)  # PID 1 of its namespaces ignores SIGTERM from outside
    broken = playbook(multirack.inventory, 'playbooks/site.yml', check=False)
    assert broken.returncode != 0
    assert 'HostVarsVars' not in broken.stdout
    assert 'node2 is unreachable (or failed): run playbooks/lab.yml' in broken.stdout
    multirack.up()
    playbook(multirack.inventory, 'playbooks/site.yml')
    assert multirack.hosts['node2'].check_output('ip netns list').strip()
