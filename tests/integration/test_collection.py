"""The collection podnet.testbed as a user gets it (issue 22): built by
make collection's script, installed by ansible-galaxy into a folder of its
own, and run by its fully qualified names against a converged lab, with an
Ansible configuration that knows nothing of the tree (no library,
module_utils, plugin folders or roles_path): what runs is the collection's
or nothing. On the lab the tree converged it changes one thing, each
node's podnet-cni link (docs/cni.md, "From the collection"); converged by
it, the lab's podnet-cni runs the collection's code. The tree converges
the lab again after."""
import ipaddress
import json
import os
import re
import subprocess
import time

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
CNI_TASK = "podnet.testbed.cni : Install the node's CNI network in its pod CIDR, and point podman at it."
PLUGIN_LINK = '/opt/cni/bin/podnet-cni'
PLUGIN = ('roles', 'cni', 'files', 'podnet-cni')  # in the tree and in the collection
CONF = json.dumps({'cniVersion': '1.1.0', 'name': 'podnet', 'type': 'podnet-cni'})
BANNER = re.compile(r'^(?:TASK|RUNNING HANDLER) \[(.*)\] \**$', re.M)
ACTION = re.compile(r'^((?:write|remove|remove_folder) \S+: .*)$', re.M)
DIFF_LINE = re.compile(r'^([-+](?![-+]{2} ).*)$', re.M)
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


@pytest.fixture(scope='module')
def converged_by_the_collection(installed, converged):
    """The lab converged by the collection's site playbook; after this
    module's tests, by the tree's again, and the podnet-cni servers that
    ran from the collection stopped (by pid)."""
    try:
        done = run(installed, converged, 'ansible-playbook', 'podnet.testbed.site')
        assert done.returncode == 0, done.stdout + done.stderr
        yield converged
    finally:
        playbook(converged.inventory, 'playbooks/site.yml')
        for host in converged.hosts.values():
            for pid in host.run('pgrep -f %s', launcher_in(installed)).stdout.split():
                host.run('kill %s', pid)


def in_collection(installed, *path):
    """The path of a file of the installed collection."""
    return str(installed[0].joinpath('ansible_collections', 'podnet', 'testbed', *path))


def launcher_in(installed):
    """The collection's cniplugin/launch.py, which its podnet-cni servers run."""
    return in_collection(installed, 'plugins', 'module_utils', 'podnet', 'cniplugin', 'launch.py')


def changes(done):
    """{task: {hosts, actions, diff}} of the tasks a --check --diff run
    would change: the hosts, the podnet modules' actions (the diff's
    `prepared` lines) and the diff's lines that differ, spaces squeezed."""
    parts = BANNER.split(done.stdout)
    found = {}
    for task, body in zip(parts[1::2], parts[2::2]):
        hosts = re.findall(r'^changed: \[(\S+)\]', body, re.M)
        if hosts:
            found[task] = dict(hosts=sorted(hosts), actions=sorted(set(ACTION.findall(body))),
                               diff=sorted({' '.join(line.split()) for line in DIFF_LINE.findall(body)}))
    return found


def cni(host, verb):
    """A call of the node's podnet-cni, as a runtime makes it."""
    return host.run('echo %s | CNI_COMMAND=%s CNI_PATH=/usr/lib/cni %s', CONF, verb, PLUGIN_LINK)


def resident_server(host, launcher, timeout=10):
    """Whether the node's podnet-cni server runs `launcher` and listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.run('pgrep -f %s', launcher).rc == 0 and host.run('test -S /run/podnet/cni.sock').rc == 0:
            return True
        time.sleep(0.1)
    return False


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


def test_the_collections_site_playbook_finds_the_lab_converged_but_for_podnet_cni(installed, converged):
    """Its roles by their short names, their modules and action plugins
    (podnet_cluster, podnet_run_lock, podnet_role_vars) all the collection's.
    The one change (docs/cni.md, "From the collection"): each node's
    podnet-cni link goes from the tree's plugin to the collection's own, so
    that the node's CNI plugin runs the code of the podnet that installed it."""
    done = run(installed, converged, 'ansible-playbook', '--check', '--diff', 'podnet.testbed.site')
    assert done.returncode == 0, done.stdout + done.stderr
    assert recap(done) == {name: dict(changed=1, unreachable=0, failed=0) for name in converged.hosts}
    assert changes(done) == {CNI_TASK: dict(
        hosts=sorted(converged.hosts), actions=['write %s: its content differs' % PLUGIN_LINK],
        diff=['+ content: -> %s' % in_collection(installed, *PLUGIN), '- content: -> %s' % ROOT.joinpath(*PLUGIN)])}


def test_podnet_cni_runs_from_the_collection_that_converged_the_lab(installed, converged_by_the_collection):
    """Converged by the collection, the lab stays so (a second run changes
    nothing), and each node's podnet-cni answers from the collection's code:
    the first call direct, which starts the node's resident server from the
    collection, the next by that server."""
    lab = converged_by_the_collection
    done = run(installed, lab, 'ansible-playbook', '--check', 'podnet.testbed.site')
    assert recap(done) == {name: dict(changed=0, unreachable=0, failed=0) for name in lab.hosts}, done.stdout
    for name, host in lab.hosts.items():
        assert host.file(PLUGIN_LINK).linked_to == in_collection(installed, *PLUGIN)
        version = cni(host, 'VERSION')
        assert version.rc == 0 and json.loads(version.stdout)['cniVersion'] == '1.1.0', (name, version.stdout)
        assert resident_server(host, launcher_in(installed)), name
        status = cni(host, 'STATUS')
        assert (status.rc, status.stdout) == (0, ''), name
