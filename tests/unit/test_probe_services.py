"""probe.yml meets Services (issue 23, item 5): a column per Service port,
planned from a node's record (each bad name refused naming probe_services),
probed from every pod on its own port and protocol, printed in its port's
truth table, and judged by the policy model at the endpoints, after DNAT."""
import pytest
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.explain import prober, reachability, servicetargets

from test_probe import PODS, cell, full
from test_probe import record as policy_record

ENDPOINT_A = {'pod': 'x/a', 'node': 'node1', 'ip': '10.42.0.2', 'port': 80}
ENDPOINT_B = {'pod': 'x/b', 'node': 'node2', 'ip': '10.42.1.2', 'port': 80}


def served(cluster_ip, *ports):
    return {'type': 'ClusterIP', 'cluster_ip': cluster_ip, 'affinity_timeout': None, 'external_local': False,
            'internal_local': False, 'ports': list(ports)}


def port(number, endpoints, protocol='TCP', name=None):
    return {'name': name, 'protocol': protocol, 'port': number, 'node_port': None, 'endpoints': endpoints}


SERVICES = {'x/web': served('10.43.0.50', port(80, [ENDPOINT_A, ENDPOINT_B], name='http'),
                            port(81, [ENDPOINT_B], 'UDP', 'udp')),
            'x/only-a': served('10.43.0.51', port(80, [ENDPOINT_A])),
            'x/nothing': served('10.43.0.52', port(80, [])),
            'x/headless': served(None, port(80, [ENDPOINT_A]))}


def test_every_service_port_is_a_target_at_its_cluster_ip():
    assert servicetargets.plan(SERVICES, ['all']) == [
        {'key': 'svc x/nothing:80', 'ip': '10.43.0.52', 'port': 80, 'protocol': 'TCP'},
        {'key': 'svc x/only-a:80', 'ip': '10.43.0.51', 'port': 80, 'protocol': 'TCP'},
        {'key': 'svc x/web:80', 'ip': '10.43.0.50', 'port': 80, 'protocol': 'TCP'},
        {'key': 'svc x/web:81', 'ip': '10.43.0.50', 'port': 81, 'protocol': 'UDP'}]
    assert [t['key'] for t in servicetargets.plan(SERVICES, ['x/web'])] == ['svc x/web:80', 'svc x/web:81']
    assert servicetargets.plan(None, []) == []


@pytest.mark.parametrize('services, wanted, message', [
    (SERVICES, ['x/nope'], 'probe_services: no Service x/nope in the cluster (Services: x/headless, x/nothing,'),
    (SERVICES, ['x/headless'], 'probe_services: Service x/headless is headless (clusterIP: None)'),
    (None, ['all'], 'probe_services: the nodes serve no Services')])
def test_a_bad_service_name_is_refused_before_any_probe(services, wanted, message):
    with pytest.raises(SpecError) as raised:
        servicetargets.plan(services, wanted)
    assert message in str(raised.value)


def test_each_source_probes_each_service_port_on_its_own_port_and_protocol():
    sources = [{'key': 'x/b', 'netns': 'cni-b'}, {'key': 'x/a', 'netns': 'cni-a'}]
    probes = prober.plan(sources, [{'key': 'x/a', 'ip': '10.42.0.2'}], [8080], ['TCP'],
                         servicetargets.plan(SERVICES, ['x/web']))
    assert [(p.source, p.target, p.ip, p.port, p.protocol) for p in probes] == [
        ('x/a', 'x/a', '10.42.0.2', 8080, 'TCP'), ('x/a', 'svc x/web:80', '10.43.0.50', 80, 'TCP'),
        ('x/a', 'svc x/web:81', '10.43.0.50', 81, 'UDP'),
        ('x/b', 'x/a', '10.42.0.2', 8080, 'TCP'), ('x/b', 'svc x/web:80', '10.43.0.50', 80, 'TCP'),
        ('x/b', 'svc x/web:81', '10.43.0.50', 81, 'UDP')]


def test_service_columns_follow_the_pods_in_their_port_s_table_and_are_never_rows():
    results = full() + [cell(s, 'svc x/web:80', s != 'y/a') for s in PODS] + \
        [cell(s, 'svc x/web:81', True, 81, 'UDP', 'answered') for s in PODS]
    tcp, udp = reachability.build(results, PODS)
    assert tcp.pods == ['x/a', 'x/b', 'y/a'] and tcp.columns == ['x/a', 'x/b', 'y/a', 'svc x/web:80']
    assert tcp.table()[1:] == ['-\tx/a\tx/b\ty/a\tsvc x/web:80', 'x/a\t.\t.\t.\t.', 'x/b\t.\t.\t.\t.',
                               'y/a\t.\t.\t.\tX']
    assert udp.columns == ['svc x/web:81'] and udp.table()[1:3] == ['-\tsvc x/web:81', 'x/a\t.']
    assert reachability.summary([tcp])['TCP/80'] == {'allowed': 11, 'denied': 1, 'undecided': 0}
    again = reachability.loads(reachability.dumps([tcp, udp]), 'saved')
    assert again[0].columns == tcp.columns and again[1].columns == udp.columns
    assert reachability.compare(again, [tcp, udp]) == []


def test_the_model_judges_a_service_cell_at_its_endpoints_after_dnat():
    """x/a is isolated for ingress from y/a; x/b is not: to x/web (a and b)
    the model allows some endpoints, so it does not judge; to x/only-a it
    denies y/a and allows x/b, and does not judge x/a, which reaches itself
    (hairpin); to x/nothing no policy judges (the Service rejects)."""
    source = policy_record({'metadata': {'name': 'only-x', 'namespace': 'x'},
                            'spec': {'podSelector': {'matchLabels': {'pod': 'a'}}, 'policyTypes': ['Ingress'],
                                     'ingress': [{'from': [{'podSelector': {}}]}]}})
    source['pods'][0]['labels']['pod'] = 'a'  # x/a only
    columns = ['svc x/web:80', 'svc x/only-a:80', 'svc x/nothing:80']

    def probed(source, target):
        if target == 'svc x/nothing:80':
            return cell(source, target, False, reason='refused')
        return cell(source, target, source != 'y/a' or target == 'svc x/web:80')
    results = full(**{'y_a>x_a': False}) + [probed(s, t) for s in PODS for t in columns]
    observed = reachability.build(results, PODS)
    model, = reachability.model_matrices(observed, source, SERVICES)
    assert model.cell('x/b', 'svc x/only-a:80') is True
    assert model.reason('x/b', 'svc x/only-a:80').startswith('every endpoint allowed after DNAT')
    assert model.cell('x/a', 'svc x/only-a:80') is None  # hairpin: x/a's policy sees x/a's node
    assert model.reason('x/a', 'svc x/only-a:80') == servicetargets.HAIRPIN
    assert model.cell('y/a', 'svc x/web:80') is None
    assert model.reason('y/a', 'svc x/web:80') == ('allowed to 1 of 2 endpoints (x/b): the kernel picks one '
                                                   'per connection')
    assert model.cell('y/a', 'svc x/only-a:80') is False
    assert model.reason('y/a', 'svc x/only-a:80').startswith('every endpoint denied after DNAT: ingress of x/a')
    assert model.cell('x/a', 'svc x/nothing:80') is None
    assert model.reason('x/a', 'svc x/nothing:80') == 'no endpoints: the Service rejects, no policy judges'
    assert reachability.compare([model], reachability.reached(observed)) == []
    lines = reachability.table(observed, [model])
    assert servicetargets.RULE in lines and any(line.startswith('X every endpoint denied after DNAT: ingress')
                                                for line in lines)
