"""The embedded lab behaves like a set of VMs: reachable over SSH, each its
own host, wired by the fabric, and gone without a trace when torn down.
Runs against inventories/multirack (4 nodes, 2 routed racks)."""
import json
import os
import re

import pytest
from ansible.module_utils.podnet.lab import ssh
from ansible.module_utils.podnet.lab.host import running_hosts
from podnet_testlib import ROOT
from integration.conftest import playbook, residue

pytestmark = pytest.mark.lab


def recap_changed(output):
    return {h: int(c) for h, c in re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)', output, re.M)}


def test_ansible_reaches_every_node_over_ssh(multirack):
    done = playbook(multirack.inventory, 'playbooks/site.yml')
    assert set(recap_changed(done.stdout)) == set(multirack.hosts)


def test_each_node_has_its_own_hostname_pid1_and_namespaces(multirack):
    seen = {}
    for name, host in multirack.hosts.items():
        assert host.check_output('hostname') == name
        assert 'podnet-lab-init' in host.check_output('tr "\\0" " " < /proc/1/cmdline')
        seen[name] = host.check_output('readlink /proc/1/ns/net /proc/1/ns/pid /proc/1/ns/mnt')
    assert len(set(seen.values())) == len(seen)
    root = os.popen('readlink /proc/self/ns/net').read().strip()
    assert all(root not in s for s in seen.values())


def test_ip_netns_is_private_to_each_node(multirack):
    node1, node2 = multirack.hosts['node1'], multirack.hosts['node2']
    try:
        node1.check_output('ip netns add podnet-probe')
        assert 'podnet-probe' in node1.check_output('ip netns list')
        assert 'podnet-probe' not in node2.check_output('ip netns list')
        assert not os.path.exists('/run/netns/podnet-probe')
    finally:
        node1.run('ip netns del podnet-probe')


def test_nodes_reach_each_other_within_and_across_racks(multirack):
    underlay = {n: v['podnet_underlay_ip'] for n, v in multirack.vars.items()}
    racks = {v['podnet_rack'] for v in multirack.vars.values()}
    assert len(racks) == 2
    for name, host in multirack.hosts.items():
        for other, address in underlay.items():
            if other != name:
                assert host.run('ping -c1 -W2 %s', address).rc == 0, '%s -> %s' % (name, other)


def test_nodes_route_to_the_outside_host_via_the_fabric(multirack):
    host = multirack.hosts['node3']
    assert host.run('ping -c1 -W2 203.0.113.10').rc == 0
    assert 'via 10.12.2.1' in host.check_output('ip route show default')


def test_management_network_carries_only_controller_traffic(multirack):
    node1_to_node2_mgmt = multirack.hosts['node1'].run(
        'ping -c1 -W1 %s', multirack.vars['node2']['ansible_host'])
    assert node1_to_node2_mgmt.rc != 0


def test_root_namespace_gets_only_the_mgmt_bridge(multirack):
    routes = os.popen('ip -4 route show table all').read()
    for prefix in ('10.12.', '203.0.113.', '10.42.'):
        assert prefix not in routes
    forwarding = open('/proc/sys/net/ipv4/ip_forward').read().strip()
    assert forwarding == '0'


def test_second_run_changes_nothing(multirack):
    done = multirack.up()
    assert set(recap_changed(done.stdout).values()) == {0}


def test_root_on_a_node_has_a_home_of_its_own_not_the_controllers(multirack):
    """Regression: nodes ran every command with the controller's HOME, so
    bash sourced the controller user's ~/.bashrc (here pyenv init, 90 ms a
    command, and its PATH) on every node."""
    for host in multirack.hosts.values():
        assert host.check_output('echo $HOME; stat -c %a $HOME') == '%s\n700' % ssh.NODE_HOME


def test_an_older_sshd_configuration_is_replaced_and_taken_up(multirack):
    config = ROOT / '.lab' / 'ssh' / 'sshd_config'
    wanted = config.read_text()
    config.write_text(wanted.replace('SetEnv HOME=%s\n' % ssh.NODE_HOME, ''))
    try:
        assert recap_changed(multirack.up('--check').stdout)['node1'] == 1
        assert config.read_text() != wanted  # --check changed nothing
        done = multirack.up()
        assert config.read_text() == wanted
        assert recap_changed(done.stdout)['node1'] == 1
        assert multirack.hosts['node1'].check_output('echo $HOME') == ssh.NODE_HOME
    finally:
        config.write_text(wanted)


def test_node_whose_init_died_is_recreated(multirack):
    os.kill(running_hosts('mrack')['node2'], 9)
    checked = multirack.up('--check', '--diff')
    # Regression (issue 22): podnet_lab had a loop of its own and its --diff no action lines.
    assert re.search(r'^create node2: ', checked.stdout, re.M), checked.stdout
    assert 'node2' not in running_hosts('mrack'), '--check recreated node2'
    done = multirack.up()
    assert recap_changed(done.stdout)['node1'] == 1
    assert multirack.hosts['node2'].check_output('hostname') == 'node2'
    assert multirack.hosts['node1'].run('ping -c1 -W2 10.12.1.12').rc == 0


def test_bad_inventory_fails_before_any_change(tmp_path):
    bad = tmp_path / 'inventory'
    (bad / 'group_vars').mkdir(parents=True)
    (bad / 'hosts.yml').write_text(
        'nodes:\n  hosts:\n    node1: {ansible_host: 172.30.7.11, podnet_underlay_ip: 10.42.7.11}\n')
    (bad / 'group_vars' / 'all.yml').write_text(json.dumps({
        'podnet_root': str(ROOT),
        'podnet_lab': {'name': 'bad', 'mgmt': {'subnet': '172.30.7.0/24', 'host_ip': '172.30.7.1'},
                       'racks': {'rack1': {'subnet': '10.42.7.0/24', 'gateway': '10.42.7.1'}},
                       'outside': {'subnet': '203.0.113.0/24', 'gateway': '203.0.113.1',
                                   'host_ip': '203.0.113.10'}}}))
    done = playbook(bad, 'playbooks/lab.yml', check=False)
    assert done.returncode != 0
    assert 'podnet_lab.racks.rack1.subnet: 10.42.7.0/24 overlaps the cluster CIDR' in done.stdout
    assert residue('bad', ['172.30.7.11']) == []


def test_host_gw_is_refused_across_racks_before_any_change(multirack):
    playbook(multirack.inventory, 'playbooks/site.yml')
    done = playbook(multirack.inventory, 'playbooks/site.yml', '-e', 'podnet_backend=host-gw',
                    check=False)
    assert done.returncode != 0
    assert 'host-gw needs the nodes on one L2 segment' in done.stdout
    for name, host in multirack.hosts.items():  # still the vxlan cluster site.yml made
        assert host.run('ip link show flannel.1').rc == 0, name
        assert ' dev eth0 proto 200' not in host.check_output('ip route'), name


def test_teardown_leaves_zero_residue_and_the_lab_comes_back(multirack):
    multirack.down()
    assert multirack.residue() == []
    multirack.up()  # the session's multirack serves the test files after this one
    assert multirack.hosts['node1'].check_output('hostname') == 'node1'
