"""Pods wired by a CNI chain (pods/chain.py): the record takes the chain's
result, removal DELs with the list that wired it, the check is the chain's
CHECK, and the planner leaves a chain's addresses to its IPAM plugin; the
pods role's lists, podnet-cni's among them."""
import json

import jinja2
import pytest
import yaml
from ansible.module_utils.podnet.cni import runtime as cni
from ansible.module_utils.podnet.cni import spec
from ansible.module_utils.podnet.cniplugin.config import read_request
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods import chain
from ansible.module_utils.podnet.pods.health import Checker, Health
from ansible.module_utils.podnet.pods.ipam import HostLocalIpam, attachment_ports, attachment_veth
from ansible.module_utils.podnet.pods.planner import Planner
from ansible.module_utils.podnet.pods.records import RecordStore
from ansible.module_utils.podnet.pods.runtime import PodRuntime
from podnet_testlib import ROOT
from samples import MTU, node_state, pod, state

BRIDGE = {'cniVersion': '1.0.0', 'name': 'podnet-bridge',
          'plugins': [{'type': 'bridge', 'bridge': 'cni0'}, {'type': 'portmap'}]}
RESULT = {'cniVersion': '1.0.0',
          'interfaces': [{'name': 'cni0', 'mac': '0a:00:00:00:00:01'},
                         {'name': 'veth1234abcd', 'mac': '0a:00:00:00:00:02'},
                         {'name': 'eth0', 'mac': '0a:00:00:00:00:03', 'sandbox': '/run/netns/cni-u1'}],
          'ips': [{'address': '10.42.1.7/24', 'gateway': '10.42.1.1', 'interface': 2}]}


class FakeRuntime:
    """cni.Runtime's verbs, logged; fail: {verb: CniError}."""

    def __init__(self, fail=None, result=RESULT):
        self.calls, self.fail, self.result = [], fail or {}, result

    def _do(self, verb, netlist, att):
        self.calls.append((verb, netlist.name, att.container_id, att.netns, att.ifname))
        if verb in self.fail:
            raise self.fail[verb]

    def add(self, netlist, att):
        self._do('ADD', netlist, att)
        return self.result

    def delete(self, netlist, att):
        self._do('DEL', netlist, att)

    def check(self, netlist, att):
        self._do('CHECK', netlist, att)


def record():
    return {'key': 'default/web', 'uid': 'u1', 'netns': 'cni-u1', 'veth': 'vethnative', 'mac': 'x', 'ip': None}


def test_add_takes_address_veth_and_mac_from_the_result():
    rt = FakeRuntime()
    found = record()
    chain.PodChain(cni.NetworkList(BRIDGE), rt).add(found)
    assert rt.calls == [('ADD', 'podnet-bridge', 'u1', '/run/netns/cni-u1', 'eth0')]
    assert (found['ip'], found['veth'], found['mac']) == ('10.42.1.7', 'veth1234abcd', '0a:00:00:00:00:03')
    assert found['cni'] == BRIDGE


def test_a_failed_add_names_the_pod_and_the_chain():
    rt = FakeRuntime({'ADD': spec.CniError(7, 'bridge: bad', 'x')})
    with pytest.raises(chain.ChainError) as err:
        chain.PodChain(cni.NetworkList(BRIDGE), rt).add(record())
    assert 'default/web' in str(err.value) and 'podnet-bridge' in str(err.value) and 'bridge: bad' in str(err.value)


def test_a_result_without_ipv4_is_undone():
    rt = FakeRuntime(result=dict(RESULT, ips=[]))
    with pytest.raises(chain.ChainError):
        chain.PodChain(cni.NetworkList(BRIDGE), rt).add(record())
    assert [c[0] for c in rt.calls] == ['ADD', 'DEL']


def test_delete_uses_the_list_the_record_keeps():
    rt = FakeRuntime()
    wanted = cni.NetworkList(dict(BRIDGE, name='podnet-ptp', plugins=[{'type': 'ptp'}]))
    chain.unwire(dict(record(), cni=BRIDGE), chain.PodChain(wanted, rt), '/nowhere')
    assert rt.calls == [('DEL', 'podnet-bridge', 'u1', '/run/netns/cni-u1', 'eth0')]
    chain.unwire(record(), chain.PodChain(wanted, rt), '/nowhere')  # podnet wired it: nothing to DEL
    assert len(rt.calls) == 1


def test_a_pod_is_removed_with_the_plugins_of_the_path_given(tmp_path):
    """Once the node has gone native (or with state absent) a pod podnet-cni
    wired is DELeted with the plugin found in the module's cni_path, which
    the pods role gives: also where the CNI bin folder has no link to it."""
    log = tmp_path / 'calls'
    plugin = tmp_path / 'bin' / 'podnet-cni'
    plugin.parent.mkdir()
    plugin.write_text('#!/bin/sh\necho "$CNI_COMMAND $CNI_CONTAINERID" >> %s\n' % log)
    plugin.chmod(0o755)
    wired = dict(record(), cni={'cniVersion': '1.1.0', 'name': 'podnet-cni', 'plugins': [{'type': 'podnet-cni'}]})
    chain.unwire(wired, None, str(tmp_path), ['/nowhere', str(plugin.parent)])
    assert log.read_text() == 'DEL u1\n'


def test_problems_are_another_wiring_or_a_failed_check():
    rt = FakeRuntime()
    pods = chain.PodChain(cni.NetworkList(BRIDGE), rt)
    assert pods.problems(record()) == ['wired by native, want podnet-bridge']
    assert pods.problems(dict(record(), cni=dict(BRIDGE, name='old'))) == ['wired by old, want podnet-bridge']
    assert pods.problems(dict(record(), cni=BRIDGE)) == [] and rt.calls[-1][0] == 'CHECK'
    rt.fail['CHECK'] = spec.CniError(7, 'bridge: eth0 has no address')
    assert pods.problems(dict(record(), cni=BRIDGE)) == [
        'CNI CHECK on podnet-bridge: bridge: eth0 has no address (code 7)']


def test_checker_asks_the_chain_and_takes_its_mtu(monkeypatch):
    rt = FakeRuntime({'CHECK': spec.CniError(7, 'bridge: veth gone')})
    checker = Checker(None, MTU, {}, chain.PodChain(cni.NetworkList(BRIDGE), rt))
    monkeypatch.setattr(Checker, '_process_problems', staticmethod(lambda r: []))
    monkeypatch.setattr(Checker, '_sandbox_problems', lambda self, r, v, b: [])
    health = checker.check(dict(record(), cni=BRIDGE, ip='10.42.1.7', containers={}, cgroup=''), {}, None)
    assert health.problems == ['CNI CHECK on podnet-bridge: bridge: veth gone (code 7)'] and health.mtu_now == MTU


def test_a_chain_pod_is_remade_natively_when_the_node_goes_native(monkeypatch):
    checker = Checker(None, MTU, {})
    monkeypatch.setattr(Checker, '_sandbox_problems', lambda self, r, v, b: [])
    health = checker.check(dict(record(), cni=BRIDGE, ip='10.42.1.7', containers={}, cgroup=''), {}, None)
    assert health.problems == ['wired by podnet-bridge, want native']


def test_the_planner_leaves_a_chains_addresses_to_its_ipam(tmp_path):
    planner = Planner(MTU, DEFAULT_PIDS_LIMIT, {}, RecordStore(str(tmp_path)))
    web = pod('web')
    current = node_state({'default/web': state(web, cni=BRIDGE)}, ipam={})
    assert planner.plan(current, {'default/web': web}) == []
    native = node_state({'default/web': state(web)}, ipam={})
    assert [a.verb for a in planner.plan(native, {'default/web': web})] == ['reserve']
    assert Health().problems == []


def test_load_refuses_a_bad_list_before_anything_naming_the_field(tmp_path):
    path = tmp_path / 'x.conflist'
    path.write_text(json.dumps(dict(BRIDGE, plugins=[{'bridge': 'cni0'}])))
    with pytest.raises(SpecError) as err:
        chain.PodChain.load(str(path), str(tmp_path), [str(tmp_path)])
    assert 'cni_conflist' in str(err.value) and 'plugins[0].type' in str(err.value)
    path.write_text(json.dumps(BRIDGE))
    with pytest.raises(SpecError) as err:
        chain.PodChain.load(str(path), str(tmp_path), [str(tmp_path)])
    assert "failed to find plugin 'bridge'" in str(err.value)


def test_load_takes_the_list_as_text_or_dict_too(tmp_path):
    for given in (json.dumps(dict(BRIDGE, cniVersion='0.3.1')), dict(BRIDGE, cniVersion='0.3.1')):
        with pytest.raises(SpecError) as err:
            chain.PodChain.load(given, str(tmp_path), [str(tmp_path)])
        assert str(err.value).startswith('cni_config: incompatible CNI versions (code 1)')


def test_the_guard_is_rendered_from_the_ipam_files_as_the_run_left_them(tmp_path):
    """Regression: the guard action rendered the attachments read() found,
    those of pods this run removed through a podnet-cni chain among them
    (their DEL freed the files): a chain for a veth gone, and the next run,
    finding the guard unlike the pods, rendered it again (changed=1)."""
    ipam = HostLocalIpam(str(tmp_path), '10.42.1.0/24')
    removed = attachment_ports({'10.42.1.5': 'cni/podnet-cni/old-uid/eth0'})  # as read() saw it
    ipam.allocate('cni/podnet/abc123/eth0')  # podman's container stays
    sent = []
    runtime = PodRuntime(RecordStore(str(tmp_path)), ipam, MTU, DEFAULT_PIDS_LIMIT, {}, (),
                         lambda argv, data=None: sent.append(data) or (0, '', ''))
    current = node_state()
    current.attachments = removed
    runtime.do_guard(None, current)
    assert removed[0]['veth'] not in sent[0] and attachment_veth('cni/podnet/abc123/eth0') in sent[0]


SUBNET_ENV = {'FLANNEL_NETWORK': '10.42.0.0/16', 'FLANNEL_SUBNET': '10.42.1.1/24', 'FLANNEL_MTU': '1450',
              'FLANNEL_IPMASQ': 'true'}


def role_list(wiring):
    """The pods role's list for a wiring, as its template renders it from subnet.env."""
    loader = jinja2.FileSystemLoader(str(ROOT / 'roles' / 'pods' / 'templates'))
    templates = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined)
    templates.filters['to_json'] = json.dumps
    text = templates.get_template('cni/%s.conflist.j2' % wiring).render(
        podnet_subnet=SUBNET_ENV, podnet_state_dir='/var/lib/podnet')
    return cni.NetworkList.parse(text, wiring)


def test_every_chain_the_role_offers_has_its_list():
    specs = yaml.safe_load((ROOT / 'roles' / 'pods' / 'meta' / 'argument_specs.yml').read_text())
    chains = [c for c in specs['argument_specs']['main']['options']['podnet_cni']['choices'] if c != 'native']
    assert 'podnet-cni' in chains
    for wiring in chains:
        assert role_list(wiring).plugins[0]['type'] == wiring


def test_the_podnet_cni_list_leaves_the_guard_to_the_pods_module():
    """The contract of the deadlock's fix (cniplugin/config.py): the pods
    module holds the node's lock through its ADDs and renders the source
    guard itself, so its list says sourceGuard caller; on cni0, with
    podnet's IPAM in the node's state folder and the node's MTU; a network
    of its own, not the cni role's (podman's), whose GC must not reach the
    pods' addresses."""
    netlist = role_list('podnet-cni')
    env = {'CNI_COMMAND': 'ADD', 'CNI_CONTAINERID': 'u1', 'CNI_NETNS': '/run/netns/cni-u1', 'CNI_IFNAME': 'eth0',
           'CNI_PATH': '/opt/cni/bin'}
    request = read_request(env, json.dumps(netlist.plugin_config(netlist.plugins[0])))
    assert (request.guarded_by, request.bridge, request.mtu, request.state_dir, request.delegate) == (
        'caller', 'cni0', 1450, '/var/lib/podnet', None)
    podman = yaml.safe_load((ROOT / 'roles' / 'cni' / 'defaults' / 'main.yml').read_text())['podnet_cni_network']
    assert netlist.name != podman and request.attachment == 'cni/podnet-cni/u1/eth0'
