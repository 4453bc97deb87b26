"""Shared test plumbing: make module_utils importable as Ansible does, and
turn any inventory into testinfra hosts.

testinfra's own ansible backend reads `ansible-inventory --list`, which does
not template variables; podnet's inventories template their connection
settings from the project folder. So hosts are built here through Ansible's
inventory and templating API, which works for the lab and real VMs alike.
"""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import ansible.module_utils

ROOT = Path(__file__).resolve().parent.parent
ansible.module_utils.__path__.append(str(ROOT / 'module_utils'))
# Inventories find the project through the ansible.cfg in use, as under make.
os.environ.setdefault('ANSIBLE_CONFIG', str(ROOT / 'ansible.cfg'))
DEFAULT_INVENTORY = ROOT / 'inventories' / 'lab'


def action_plugin(name):
    """plugins/action/<name>.py loaded as Ansible loads it (by path)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / 'plugins' / 'action' / (name + '.py'))
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return plugin


def staged_collection(build):
    """The collection podnet.testbed as it ships, laid out by
    bin/build-collection under the folder `build`; its folder."""
    done = subprocess.run([sys.executable, str(ROOT / 'bin' / 'build-collection'), '--stage-only', '--build',
                           str(build)], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def ignores_no_signal(sig_ign):
    """True when a SigIgn mask of /proc/<pid>/status (hex) ignores none of
    signals 1-31, as a container runtime starts a process (32 and 33 are
    glibc's own)."""
    return int(sig_ign, 16) & 0x7fffffff == 0


@contextlib.contextmanager
def kernel_at_least(settings, why, root='/proc/sys'):
    """The kernel's settings ({sysctl name: value}) raised to at least these
    values while the block runs, and put back after, in reverse order: a test
    that needs more than a fresh kernel's defaults sets it up itself and
    leaves the machine as it found it, so that no machine's history makes it
    pass. Fails naming the setting, the value and why, when it cannot."""
    import pytest
    before = []
    try:
        for name, value in settings.items():
            path = os.path.join(root, *name.split('.'))
            try:
                with open(path) as f:
                    old = int(f.read())
                if old < value:
                    with open(path, 'w') as f:
                        f.write(str(value))
                    before.append((path, old))
            except OSError as exc:
                pytest.fail('%s: %s must be at least %d, and it could not be set (%s): sysctl -w %s=%d'
                            % (why, name, value, exc, name, value))
        yield
    finally:
        for path, old in reversed(before):
            with open(path, 'w') as f:
                f.write(str(old))


def playbook_argv(inventory, *args):
    """ansible-playbook of the project's venv on inventory, as a user runs it."""
    return [str(ROOT / '.venv' / 'bin' / 'ansible-playbook'), '-i', str(inventory), *args]


def playbook_env():
    """The environment a test runs playbooks in: the project's ansible.cfg,
    no colour codes in what it reads back (make exports ANSIBLE_FORCE_COLOR=1
    outside CI, which wins over ANSIBLE_NOCOLOR)."""
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                ANSIBLE_FORCE_COLOR='0')


def inventory_path(config):
    chosen = (config.getoption('ansible_inventory', default=None)
              or os.environ.get('PODNET_INVENTORY') or DEFAULT_INVENTORY)
    return Path(chosen).resolve()


def inventory_nodes(inventory):
    """{name: {templated hostvars}} of the group `nodes`."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=manager)
    nodes = {}
    for host in manager.get_hosts('nodes'):
        hostvars = variables.get_vars(host=host)
        templar = Templar(loader=loader, variables=hostvars)
        nodes[host.name] = {k: templar.template(v) for k, v in hostvars.items()
                            if k.startswith(('ansible_', 'podnet_')) or k == 'inventory_dir'}
    return nodes


def testinfra_host(hostvars):
    import testinfra
    port = hostvars.get('ansible_port')
    return testinfra.get_host(
        'ssh://%s@%s%s' % (hostvars.get('ansible_user', 'root'), hostvars['ansible_host'],
                           ':%s' % port if port else ''),
        ssh_identity_file=hostvars.get('ansible_ssh_private_key_file'),
        ssh_extra_args=hostvars.get('ansible_ssh_common_args', ''),
        # testinfra formats the command with %: the ssh tokens are escaped.
        controlpath=str(ROOT / '.lab' / 'cp' / '%%h-%%p-%%r'))


NEEDS_ROOT = 'root'  # a root-only test's skip reason says so


def skipped_as_root(report, euid=None):
    """The reason a root-only test (its skip reason names root) skipped
    while running as root, or None: as root such a skip means the machine
    lacks what the test needs, and the run must not pass without it."""
    if not report.skipped or (os.geteuid() if euid is None else euid) != 0:
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason if NEEDS_ROOT in reason else None
