"""podnet_role_vars (plugins/action): every role's variables on every host
checked at once against the roles' own argument specs, before anything
changes; site.yml relies on it instead of Ansible's check per role and host."""
import pytest
from podnet_testlib import ROOT, action_plugin

ROLES = [str(ROOT / 'roles')]
plugin = action_plugin('podnet_role_vars')


def test_a_host_variable_that_does_not_fit_is_named_with_its_host_and_role():
    options = plugin.role_options('backend', 'main', ROLES)
    assert plugin.check('node2', 'backend', options, {'podnet_backend': 'gre', 'other': 1}) == [
        'node2: role backend: value of podnet_backend must be one of: vxlan, host-gw, got: gre']
    assert plugin.check('node2', 'backend', options, {'podnet_backend': 'host-gw'}) == []


def test_only_what_the_host_sets_is_checked():
    options = plugin.role_options('node', 'main', ROLES)
    assert plugin.check('node1', 'node', options, {}) == []
    [error] = plugin.check('node1', 'node', options, {'podnet_node_sysctls': 'not-a-dict'})
    assert error.startswith("node1: role node: argument 'podnet_node_sysctls' is of type str")


def test_a_value_that_does_not_template_is_an_error_not_a_crash():
    class Broken(dict):
        def __getitem__(self, name):
            raise ValueError("'nowhere' is undefined")
    options = plugin.role_options('policy', 'main', ROLES)
    assert plugin.check('node3', 'policy', options, Broken(podnet_state_dir='{{ nowhere }}')) == [
        "node3: role policy: podnet_state_dir: 'nowhere' is undefined"]


def test_each_entry_point_has_its_options_and_an_unknown_role_or_entry_point_is_refused():
    assert set(plugin.role_options('network', 'reset', ROLES)) == {'podnet_state_dir', 'podnet_subnet_env'}
    with pytest.raises(LookupError, match='role nosuch: not found'):
        plugin.role_options('nosuch', 'main', ROLES)
    with pytest.raises(LookupError, match="role network: no entry point 'nope'"):
        plugin.role_options('network', 'nope', ROLES)


@pytest.mark.parametrize('playbook, entry_point', [('site.yml', 'main'), ('reset.yml', 'reset'), ('lab.yml', 'main')])
def test_a_playbook_checks_every_role_it_imports_at_the_entry_point_it_imports(playbook, entry_point):
    import yaml
    [play] = yaml.safe_load((ROOT / 'playbooks' / playbook).read_text())
    [check] = [t['podnet_role_vars'] for t in play['pre_tasks'] if 'podnet_role_vars' in t]
    imported = [t['ansible.builtin.import_role'] for t in play['tasks']]
    assert [r['name'] for r in imported] == check['roles']
    assert {r.get('tasks_from', 'main') for r in imported} == {check.get('entry_point', 'main')} == {entry_point}
    assert all(r['rolespec_validate'] is False for r in imported)


@pytest.mark.parametrize('name', ['../../evil', 'a/b', 'Node1', '-node', 'n' * 64])
def test_an_inventory_name_that_is_no_hostname_is_refused(name):
    assert plugin.bad_name(name) == ('%s: inventory name: not a DNS label (a-z, 0-9 and -, at most 63, '
                                     'as a hostname)' % name)
    assert plugin.bad_name('node-1') is None


@pytest.mark.parametrize('playbook', ['site.yml', 'reset.yml', 'lab.yml'])
def test_a_playbook_refuses_a_bad_inventory_name_before_any_node_task(tmp_path, playbook):
    """Regression (issue 21): lab.yml refused '../../evil' and 'a/b', site.yml
    took them, and recreated flannel.1 with new MACs on every node; then
    lab.yml refused them in other words than site.yml and reset.yml."""
    import subprocess
    from podnet_testlib import playbook_argv, playbook_env
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text('nodes:\n  hosts:\n    "a/b": {ansible_host: 127.0.0.254}\n'
                         '    node1: {ansible_host: 127.0.0.253}\n')
    done = subprocess.run(playbook_argv(inventory, 'playbooks/' + playbook), cwd=ROOT, env=playbook_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'a/b: inventory name: not a DNS label' in done.stdout
    assert 'UNREACHABLE' not in done.stdout and 'node1: inventory name' not in done.stdout


def test_an_unknown_pod_wiring_is_refused_naming_the_variable_and_the_chains():
    options = plugin.role_options('pods', 'main', ROLES)
    found = plugin.check('node1', 'pods', options, {'podnet_cni': 'calico'})
    assert len(found) == 1 and 'podnet_cni' in found[0] and 'native, bridge, ptp, podnet-cni' in found[0], found
    for wiring in ('ptp', 'podnet-cni'):
        assert plugin.check('node1', 'pods', options, {'podnet_cni': wiring}) == []
