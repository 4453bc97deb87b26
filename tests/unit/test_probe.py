"""Reachability matrices without root: cells into matrices, the e2e truth
table, the JSON round trip, comparison with an expectation; the probe plan
and the TCP and UDP tries against servers on loopback."""
import json
import socket
import threading

import pytest
from ansible.module_utils.podnet.explain import prober, reachability
from ansible.module_utils.podnet.core.errors import SpecError

PODS = {'x/a': '10.42.0.2', 'x/b': '10.42.1.2', 'y/a': '10.42.2.2'}


def cell(source, target, allowed, port=80, protocol='TCP', reason=None):
    if reason is None:
        reason = {True: 'connected', False: 'timeout', None: 'unsupported: no SCTP'}[allowed]
    return {'from': source, 'to': target, 'port': port, 'protocol': protocol,
            'allowed': allowed, 'reason': reason}


def full(allowed=True, port=80, protocol='TCP', pods=PODS, **exceptions):
    """Every cell of one matrix; exceptions: {'x/a>x/b': value}."""
    cells = []
    for source in pods:
        for target in pods:
            value = exceptions.get(('%s>%s' % (source, target)).replace('/', '_'), allowed)
            cells.append(cell(source, target, value, port, protocol))
    return cells


# -- building and printing -------------------------------------------------

def test_one_matrix_per_port_and_protocol_sorted():
    results = full(port=81) + full(protocol='UDP') + full()
    assert [m.name for m in reachability.build(results, PODS)] == ['TCP/80', 'UDP/80', 'TCP/81']


def test_rows_are_sources_columns_targets_sorted():
    results = full(**{'x_a>x_b': False})
    matrix, = reachability.build(list(reversed(results)), PODS)
    assert matrix.pods == ['x/a', 'x/b', 'y/a']
    assert matrix.table() == ['TCP/80', '-\tx/a\tx/b\ty/a', 'x/a\t.\tX\t.', 'x/b\t.\t.\t.',
                              'y/a\t.\t.\t.']


def test_unprobed_and_undecided_cells_print_a_question_mark_and_why():
    results = [c for c in full(protocol='SCTP', allowed=None) if c['from'] != 'y/a']
    matrix, = reachability.build(results, PODS)
    lines = matrix.table()
    assert lines[2:5] == ['x/a\t?\t?\t?', 'x/b\t?\t?\t?', 'y/a\t?\t?\t?']
    assert lines[5] == '?: not probed; unsupported: no SCTP'


def test_pod_only_in_the_cells_is_added_without_ip():
    matrix, = reachability.build([cell('x/a', 'z/c', False)], {'x/a': '10.42.0.2'})
    assert matrix.pods == ['x/a', 'z/c'] and matrix.ips == {'x/a': '10.42.0.2', 'z/c': None}


def test_tables_are_separated_by_a_blank_line():
    lines = reachability.table(reachability.build(full() + full(port=81), PODS))
    assert lines.count('') == 1 and lines[lines.index('') + 1] == 'TCP/81'


def test_summary_counts_cells():
    matrices = reachability.build(full(**{'x_a>x_b': False, 'y_a>y_a': None}), PODS)
    assert reachability.summary(matrices) == {'TCP/80': {'allowed': 7, 'denied': 1, 'undecided': 1}}


# -- JSON ------------------------------------------------------------------

def test_json_shape():
    data = json.loads(reachability.dumps(reachability.build(full(**{'x_a>x_b': False}), PODS)))
    assert data == [{'port': 80, 'protocol': 'TCP', 'pods': ['x/a', 'x/b', 'y/a'], 'ips': PODS,
                     'allowed': {'x/a': {'x/a': True, 'x/b': False, 'y/a': True},
                                 'x/b': {'x/a': True, 'x/b': True, 'y/a': True},
                                 'y/a': {'x/a': True, 'x/b': True, 'y/a': True}}}]


def test_json_says_why_each_cell_not_allowed_is_so():
    observed = reachability.build(full(**{'x_a>x_b': False, 'y_a>x_a': False, 'x_b>y_a': None}), PODS)
    model = reachability.build(full(**{'x_a>x_b': False}), PODS)
    model[0].reasons = {'x/a': {'x/b': 'ingress of x/b: isolated by x/deny, no rule allows'}}
    data = json.loads(reachability.dumps(observed, model))
    assert data[0]['why'] == {
        'x/a': {'x/b': 'ingress of x/b: isolated by x/deny, no rule allows'},
        'x/b': {'y/a': 'unsupported: no SCTP'},
        'y/a': {'x/a': 'the policy model allows it (see the differences)'}}
    assert reachability.compare(reachability.loads(reachability.dumps(observed, model), 'e.json'), observed) == []


def test_json_round_trip_compares_equal():
    matrices = reachability.build(full() + full(protocol='UDP', **{'y_a>x_a': False}), PODS)
    assert reachability.compare(reachability.loads(reachability.dumps(matrices), 'e.json'), matrices) == []


@pytest.mark.parametrize('text, message', [
    ('{', 'invalid JSON'),
    ('[]', 'must be a list'),
    ('[{"port": 0, "protocol": "TCP", "allowed": {}}]', 'port: 0'),
    ('[{"port": 80, "protocol": "tcp", "allowed": {}}]', "protocol: 'tcp'"),
    ('[{"port": 80, "protocol": "TCP", "allowed": {"x/a": {"x/b": "yes"}}}]',
     "TCP/80: allowed[x/a][x/b]: 'yes' must be true, false or null"),
    ('[{"port": 80, "protocol": "TCP", "allowed": {}}, {"port": 80, "protocol": "TCP", '
     '"allowed": {}}]', 'TCP/80 is given twice'),
])
def test_bad_expectation_is_refused_naming_the_field(text, message):
    with pytest.raises(SpecError, match='e.json') as err:
        reachability.loads(text, 'e.json')
    assert message in str(err.value)


def test_single_object_is_one_matrix():
    text = '{"port": 81, "protocol": "UDP", "allowed": {"x/a": {"x/b": true}}}'
    matrix, = reachability.loads(text, 'e.json')
    assert (matrix.name, matrix.pods, matrix.cell('x/a', 'x/b')) == ('UDP/81', ['x/a', 'x/b'], True)


# -- comparing -------------------------------------------------------------

def expectation(matrices, **changes):
    """dumps(matrices) with cells changed: {'TCP/80 x/a>x/b': value}."""
    data = json.loads(reachability.dumps(matrices))
    for where, value in changes.items():
        for item in data:
            name, pair = where.split(' ')
            source, target = pair.split('>')
            if name == '%s/%d' % (item['protocol'], item['port']):
                item['allowed'].setdefault(source, {})[target] = value
    return reachability.loads(json.dumps(data), 'e.json')


def test_every_differing_cell_is_listed():
    observed = reachability.build(full(**{'x_a>x_b': False}) + full(protocol='UDP'), PODS)
    expected = expectation(observed, **{'TCP/80 x/a>x/b': True, 'UDP/80 y/a>x/a': False})
    assert reachability.compare(expected, observed) == [
        'TCP/80 x/a -> x/b: expected allowed, got denied',
        'UDP/80 y/a -> x/a: expected denied, got allowed']


def test_unprobed_pod_and_matrix_differ():
    observed = reachability.build(full(), PODS)
    expected = expectation(observed, **{'TCP/80 z/c>x/a': True})
    expected += reachability.loads('[{"port": 81, "protocol": "TCP", "allowed": {"x/a": {"x/b": false}}}]',
                            'e.json')
    assert reachability.compare(expected, observed) == [
        'TCP/80 z/c -> x/a: expected allowed, got not probed',
        'TCP/81 x/a -> x/b: expected denied, got not probed']


def test_undecided_cell_differs_with_its_reason():
    observed = reachability.build(full(protocol='SCTP', allowed=None), PODS)
    expected = expectation(observed, **{'SCTP/80 x/a>x/b': True})
    assert reachability.compare(expected, observed) == [
        'SCTP/80 x/a -> x/b: expected allowed, got unsupported: no SCTP']


def test_null_expected_cells_and_extra_observed_ones_are_not_compared():
    observed = reachability.build(full(**{'x_a>x_b': False}) + full(port=81), PODS)
    expected = expectation(observed[:1], **{'TCP/80 x/a>x/b': None})
    assert reachability.compare(expected, observed) == []


# -- the probe plan and the tries ------------------------------------------

SOURCES = [{'key': 'x/b', 'netns': 'cni-2'}, {'key': 'x/a', 'netns': 'cni-1'}]
TARGETS = [{'key': 'x/a', 'ip': '10.42.0.2'}, {'key': 'x/b', 'ip': '10.42.1.2'}]


def test_plan_is_every_cell_sorted_by_source():
    probes = prober.plan(SOURCES, TARGETS, [81, 80, 80], ['UDP', 'TCP'])
    assert len(probes) == 2 * 2 * 2 * 2
    assert [p.source for p in probes] == ['x/a'] * 8 + ['x/b'] * 8
    assert probes[0] == prober.Probe('x/a', 'cni-1', 'x/a', '10.42.0.2', 80, 'TCP')
    assert probes[0].result(True, 'connected') == {'from': 'x/a', 'to': 'x/a', 'port': 80,
                                                   'protocol': 'TCP', 'allowed': True,
                                                   'reason': 'connected'}


@pytest.mark.parametrize('sources, targets, ports, protocols, message', [
    (SOURCES, [{'key': 'x/a', 'ip': 'pod-a'}], [80], ['TCP'], "target x/a: ip: 'pod-a'"),
    (SOURCES, TARGETS, [0], ['TCP'], 'ports: 0 is not a port'),
    (SOURCES, TARGETS, [80], ['ICMP'], "protocols: 'ICMP'"),
    ([{'key': 'x/a', 'netns': '../../proc/1/ns/net'}], TARGETS, [80], ['TCP'], 'source x/a: netns'),
])
def test_plan_refuses_bad_input(sources, targets, ports, protocols, message):
    with pytest.raises(SpecError, match='^' + message.replace('(', r'\(')):
        prober.plan(sources, targets, ports, protocols)


@pytest.fixture
def tcp_server():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def udp_server():
    """Answers every datagram with its hostname, as serve-hostname --udp.
    Its thread ends with the test: a later test that forks (seccomp's)
    must not inherit a thread blocked in recvfrom, which close() does not
    wake; a last datagram does."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(('127.0.0.1', 0))
    seen, stop = [], threading.Event()

    def serve():
        while True:
            data, client = server.recvfrom(2048)
            if stop.is_set():
                return
            seen.append(data)
            server.sendto(b'a', client)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
        waker.sendto(b'', server.getsockname())
    thread.join(5)
    server.close()


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_tcp_connect_is_allowed_and_refusal_denied(tcp_server):
    assert prober.try_tcp('127.0.0.1', tcp_server, 1.0) == (True, 'connected')
    assert prober.try_tcp('127.0.0.1', free_port(socket.SOCK_STREAM), 1.0) == (False, 'refused')


def test_udp_answer_is_allowed_and_refusal_denied(udp_server):
    port, seen = udp_server
    assert prober.try_udp('127.0.0.1', port, 1.0) == (True, 'answered')
    assert seen == [b'hostname\n']
    assert prober.try_udp('127.0.0.1', free_port(socket.SOCK_DGRAM), 1.0) == (False, 'refused')


def test_udp_without_answer_times_out_after_two_sends():
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(('127.0.0.1', 0))
    with mute:
        assert prober.try_udp('127.0.0.1', mute.getsockname()[1], 0.2) == (False, 'timeout')
        assert [mute.recv(64) for _ in range(2)] == [b'hostname\n'] * 2


def test_sctp_without_kernel_support_is_undecided_for_every_cell(monkeypatch):
    monkeypatch.setattr(prober, 'sctp_unsupported', lambda: 'unsupported: no SCTP')
    probes = prober.plan(SOURCES, TARGETS, [80], ['SCTP'])
    results = prober.run(probes, 1.0, 4)
    assert {(r['allowed'], r['reason']) for r in results} == {(None, 'unsupported: no SCTP')}
    assert len(results) == 4


# -- the policy model: reasons for denials, disagreements flagged ----------

def record(*policies):
    """A node's policy record for PODS: x/a and x/b labelled app=web."""
    pods = [{'namespace': k.split('/')[0], 'name': k.split('/')[1], 'node': 'node1', 'ip': ip,
             'labels': {'app': 'web'} if k.startswith('x/') else {}, 'ports': []}
            for k, ip in PODS.items()]
    return {'policies': list(policies), 'pods': pods, 'namespaces': {'x': {}, 'y': {}}}


DENY_X = {'metadata': {'namespace': 'x', 'name': 'deny'}, 'spec': {'podSelector': {}}}
ALLOW_FROM_X = {'metadata': {'namespace': 'x', 'name': 'from-x'}, 'spec': {
    'podSelector': {}, 'ingress': [{'from': [{'podSelector': {'matchLabels': {'app': 'web'}}}]}]}}


def test_the_model_computes_each_cell_with_its_reason():
    observed = reachability.build(full(), PODS)
    model, = reachability.model_matrices(observed, record(DENY_X, ALLOW_FROM_X))
    assert model.cell('y/a', 'x/a') is False
    assert model.reason('y/a', 'x/a') == 'ingress of x/a: isolated by x/deny, x/from-x, no rule allows'
    assert model.cell('x/b', 'x/a') is True
    assert 'allowed by x/from-x ingress rule 0' in model.reason('x/b', 'x/a')


def test_denied_cells_are_printed_with_the_reason_grouped_by_policy():
    observed = reachability.build(full(**{'y_a>x_a': False, 'y_a>x_b': False}), PODS)
    lines = reachability.table(observed, reachability.model_matrices(observed, record(DENY_X)))
    assert lines[-1] == 'X ingress: isolated by x/deny, no rule allows: y/a->x/a y/a->x/b'


def test_a_cell_where_kernel_and_model_disagree_is_flagged_with_the_models_reason():
    # The kernel enforces x/deny, and also denies x/a -> y/a, which nothing isolates.
    observed = reachability.build(full(**{'y_a>x_a': False, 'y_a>x_b': False, 'x_a>x_b': False,
                                   'x_b>x_a': False, 'x_a>y_a': False}), PODS)
    model = reachability.model_matrices(observed, record(DENY_X))
    assert reachability.compare(model, observed) == [
        'TCP/80 x/a -> y/a: expected allowed (egress of x/a: not isolated (no policy selects it '
        'for Egress); ingress of y/a: not isolated (no policy selects it for Ingress)), got denied']
    assert 'X the policy model allows it (see the differences): x/a->y/a' in reachability.table(observed, model)


def test_a_pod_the_record_does_not_hold_is_not_judged():
    observed = reachability.build(full(), dict(PODS, **{'z/new': '10.42.0.9'}))
    model, = reachability.model_matrices(observed, record())
    assert model.cell('z/new', 'x/a') is None and model.reason('z/new', 'x/a') == 'not in the policy record'


def test_a_refused_cell_reached_the_pod_and_agrees_with_a_model_that_allows_it():
    """A closed port answers with a reset (or ICMP port unreachable): the
    packet got through, since podnet drops and never rejects. The model
    allows x/a -> y/a, so no disagreement; the table still marks it X, as
    the e2e tests do, and says why. A refusal where the model denies is a
    packet that got through a policy: that one disagrees."""
    refused = {('x/a', 'y/a'), ('y/a', 'x/a')}
    cells = [dict(c, allowed=False, reason=reachability.REFUSED) if (c['from'], c['to']) in refused
             else c for c in full(**{'y_a>x_b': False, 'x_a>x_b': False, 'x_b>x_a': False})]
    observed = reachability.build(cells, PODS)
    model = reachability.model_matrices(observed, record(DENY_X))
    assert reachability.compare(model, reachability.reached(observed)) == [
        'TCP/80 y/a -> x/a: expected denied (ingress of x/a: isolated by x/deny, no rule allows), got allowed']
    assert 'X %s: x/a->y/a' % reachability.REFUSED_WHY in reachability.table(observed, model)
    assert observed[0].cell('x/a', 'y/a') is False  # the truth table is the e2e tests'
