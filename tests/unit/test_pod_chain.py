"""Pods wired by a CNI chain (pods/chain.py): the record takes the chain's
result, removal DELs with the list that wired it, the check is the chain's
CHECK, and the planner leaves a chain's addresses to its IPAM plugin."""
import json

import pytest
from ansible.module_utils.podnet.cni import runtime as cni
from ansible.module_utils.podnet.cni import spec
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel.cgroups import DEFAULT_PIDS_LIMIT
from ansible.module_utils.podnet.pods import chain
from ansible.module_utils.podnet.pods.health import Checker, Health
from ansible.module_utils.podnet.pods.planner import Planner
from ansible.module_utils.podnet.pods.records import RecordStore
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
