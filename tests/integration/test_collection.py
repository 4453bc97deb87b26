"""The collection podnet.testbed as a user gets it (issue 22): built by
make collection's script, installed by ansible-galaxy into a folder of its
own, and run by its fully qualified names against a converged lab, with an
Ansible configuration that knows nothing of the tree (no library,
module_utils, plugin folders or roles_path): what runs is the collection's
or nothing."""
import ipaddress
import json
import os
import subprocess

import pytest
from integration.conftest import finish, playbook, pod_records, recap
from podnet_testlib import ROOT, playbook_env

pytestmark = pytest.mark.lab

VENV_BIN = ROOT / '.venv' / 'bin'
# What the lab's connection needs (ansible.cfg's), and nothing of the tree.
CONFIG = """[defaults]
gathering = explicit
interpreter_python = auto_silent
host_key_checking = True
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o ServerAliveInterval=5
"""
TREE_SETTINGS = ('DEFAULT_MODULE_PATH', 'DEFAULT_MODULE_UTILS_PATH', 'DEFAULT_ACTION_PLUGIN_PATH',
                 'DOC_FRAGMENT_PLUGIN_PATH', 'DEFAULT_ROLES_PATH')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(folder the collection is installed in, its environment)."""
    env = dict(playbook_env(), PATH='%s:%s' % (VENV_BIN, os.environ['PATH']))
    tarball = subprocess.run([str(ROOT / 'bin' / 'build-collection')], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
    home = tmp_path_factory.mktemp('collection')
    subprocess.run([str(VENV_BIN / 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(home),
                    tarball], cwd=home, check=True, capture_output=True)
    (home / 'ansible.cfg').write_text(CONFIG)
    env = {k: v for k, v in env.items() if not k.startswith('ANSIBLE_') or k.endswith('COLOR')}
    env.update(ANSIBLE_CONFIG=str(home / 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=str(home))
    return home, env


@pytest.fixture(scope='module')
def converged(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    return multirack


def run(installed, lab, *argv):
    """An ansible command of the venv on the lab, from the collection's folder;
    podnet_root (the inventory takes it from ansible.cfg's folder) is the tree,
    where the lab keeps its keys."""
    home, env = installed
    command = [str(VENV_BIN / argv[0]), '-i', str(lab.inventory), '-e', 'podnet_root=%s' % ROOT, *argv[1:]]
    return finish(subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True), check=False)


def test_nothing_of_the_tree_is_configured(installed):
    home, env = installed
    dump = subprocess.run([str(VENV_BIN / 'ansible-config'), 'dump', '--format', 'json'], cwd=home, env=env,
                          check=True, capture_output=True, text=True).stdout
    settings = {s['name']: s['value'] for s in json.loads(dump) if 'name' in s}
    assert [name for name in TREE_SETTINGS if str(ROOT) in json.dumps(settings[name])] == []


def test_the_trees_modules_are_out_of_reach(installed, converged):
    done = run(installed, converged, 'ansible', 'node1', '-m', 'podnet_facts')
    assert done.returncode != 0 and "Cannot resolve 'podnet_facts' to an action or module" in done.stdout


def test_facts_by_fqcn_are_each_nodes_own(installed, converged, tmp_path):
    done = run(installed, converged, 'ansible', 'nodes', '-m', 'podnet.testbed.podnet_facts', '-t', str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    facts = {name: json.loads((tmp_path / name).read_text())['ansible_facts']['podnet'] for name in converged.hosts}
    cidrs = {name: ipaddress.ip_network(f['pod_cidr']) for name, f in facts.items()}
    assert len(set(cidrs.values())) == len(cidrs)
    assert all(c.prefixlen == 24 and c.subnet_of(ipaddress.ip_network('10.42.0.0/16')) for c in cidrs.values())
    for name, host in converged.hosts.items():
        recorded = sorted(r['ip'] for r in pod_records(host))
        assert sorted(p['ip'] for p in facts[name]['pods'].values()) == recorded
        assert all(ipaddress.ip_address(ip) in cidrs[name] for ip in recorded)


def test_the_collections_site_playbook_finds_the_lab_converged(installed, converged):
    """Its roles by their short names, their modules and action plugins
    (podnet_cluster, podnet_run_lock, podnet_role_vars) all the collection's."""
    done = run(installed, converged, 'ansible-playbook', '--check', 'podnet.testbed.site')
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap(done) == {name: dict(changed=0, unreachable=0, failed=0) for name in converged.hosts}
