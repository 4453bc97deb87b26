"""podnet_cni_network's plan: the node's CNI network and podman's
containers.conf, written once, told in check mode, removed on reset."""
import json
import os

import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.node.cninet import CniNetwork, conflist, top_addresses


def spec(tmp_path, **changes):
    found = dict(state='present', state_dir=str(tmp_path / 'state'), pod_cidr='10.42.1.0/24', mtu=1450,
                 type='ptp', plugin_source=None, host_local_addresses=16, network='podnet',
                 conflist='10-podnet.conflist', conf_dir=str(tmp_path / 'net.d'), bin_dir=str(tmp_path / 'bin'),
                 system_bin_dirs=['/usr/lib/cni'], ipam_dir=str(tmp_path / 'networks'),
                 podman_conf=str(tmp_path / 'containers' / 'containers.conf'),
                 podman_cgroup_manager='cgroupfs', podman_cgroups='disabled')
    found.update(changes)
    return found


def converge(network):
    current = network.read()
    actions = network.plan(current)
    network.apply(actions, current)
    return actions


def test_a_foreign_plugin_gets_host_local_on_the_top_addresses_of_the_pod_cidr(tmp_path):
    assert top_addresses('10.42.1.0/24', 16) == ('10.42.1.239', '10.42.1.254')
    found = conflist(spec(tmp_path))
    assert found['cniVersion'] == '1.0.0' and found['name'] == 'podnet'
    assert found['plugins'] == [{'type': 'ptp', 'mtu': 1450, 'ipMasq': False, 'ipam': {
        'type': 'host-local', 'routes': [{'dst': '0.0.0.0/0'}], 'ranges': [[{
            'subnet': '10.42.1.0/24', 'gateway': '10.42.1.1', 'rangeStart': '10.42.1.239',
            'rangeEnd': '10.42.1.254'}]]}}]


def test_podnet_cni_uses_podnet_s_ipam_and_the_bin_folder_links_to_it(tmp_path):
    source = tmp_path / 'podnet-cni'
    source.write_text('#!/bin/sh\n')
    network = CniNetwork(spec(tmp_path, type='podnet-cni', plugin_source=str(source)))
    assert conflist(network.spec)['plugins'] == [
        {'type': 'podnet-cni', 'mtu': 1450, 'stateDir': network.spec['state_dir']}]
    os.makedirs(network.spec['bin_dir'])
    open(network.plugin_path, 'w').write('a copy')  # as an older podnet, or a user, left it
    actions = converge(network)
    assert ('write', network.plugin_path, 'its content differs') in actions
    assert os.readlink(network.plugin_path) == str(source)
    assert network.show(network.read())[network.plugin_path] == {'mode': 'link', 'content': '-> %s' % source}
    assert converge(network) == []


def test_writes_once_then_nothing_and_repairs_a_hand_edit(tmp_path):
    network = CniNetwork(spec(tmp_path))
    first = converge(network)
    assert [(a.verb, os.path.basename(a.target), a.reason) for a in first] == [
        ('write', '10-podnet.conflist', 'missing'), ('write', 'containers.conf', 'missing')]
    assert json.load(open(network.conflist_path))['plugins'][0]['type'] == 'ptp'
    conf = open(network.spec['podman_conf']).read()
    assert 'network_backend = "cni"' in conf
    assert 'cni_plugin_dirs = ["%s", "/usr/lib/cni"]' % network.spec['bin_dir'] in conf
    assert 'default_network = "podnet"' in conf and 'cgroups = "disabled"' in conf
    assert converge(network) == []
    open(network.conflist_path, 'w').write('{}')
    current = network.read()
    assert network.plan(current) == [('write', network.conflist_path, 'its content differs')]
    assert network.show(current)[network.conflist_path]['content'] == ['{}']
    assert network.show_wanted(current)[network.conflist_path]['content'][1] == '  "cniVersion": "1.0.0",'


def test_reset_removes_its_files_and_the_networks_addresses(tmp_path):
    network = CniNetwork(spec(tmp_path))
    converge(network)
    os.makedirs(os.path.join(network.spec['ipam_dir'], 'podnet'))
    other = os.path.join(network.spec['conf_dir'], '20-other.conflist')
    open(other, 'w').write('{}')
    reset = CniNetwork(spec(tmp_path, state='absent'))
    assert [(a.verb, os.path.basename(a.target)) for a in converge(reset)] == [
        ('remove', '10-podnet.conflist'), ('remove', 'containers.conf'), ('remove', 'podnet'),
        ('remove_folder', 'containers')]  # net.d keeps another network; bin was never made
    assert os.listdir(network.spec['conf_dir']) == ['20-other.conflist']
    assert not os.path.exists(os.path.dirname(network.spec['podman_conf']))
    assert converge(reset) == []


def test_bad_input_names_the_option_before_anything_is_written(tmp_path):
    with pytest.raises(SpecError, match='host_local_addresses'):
        CniNetwork(spec(tmp_path, pod_cidr='10.42.1.0/28', host_local_addresses=16)).read()
    with pytest.raises(SpecError, match='plugin_source'):
        CniNetwork(spec(tmp_path, type='podnet-cni', plugin_source=str(tmp_path / 'none'))).read()
    with pytest.raises(SpecError, match='pod_cidr'):
        CniNetwork(spec(tmp_path, pod_cidr='10.42.1.1/24')).read()
    assert not os.path.exists(tmp_path / 'net.d')


def test_mount_points_read_bind_mounts_and_escaped_names(tmp_path):
    from ansible.module_utils.podnet.kernel.linux import mount_points
    (tmp_path / '7').mkdir()
    (tmp_path / '7' / 'mountinfo').write_text(
        '101 90 254:0 /lab/private/node1/etc/cni/net.d /etc/cni/net.d rw - ext4 /dev/vda rw\n'
        '102 90 254:0 /x /a\\040b rw - ext4 /dev/vda rw\n')
    assert mount_points(7, str(tmp_path)) == {'/etc/cni/net.d', '/a b'}
    assert mount_points(8, str(tmp_path)) == set()
