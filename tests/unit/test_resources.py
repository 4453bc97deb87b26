"""Quantities, a container's resources and the pod's QoS class, as the API
server parses, defaults and validates them and the kubelet classes them."""
import pytest
from ansible.module_utils.podnet.plan import resources
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.plan.resources import ContainerResources

AT = 'spec.containers[0].resources'
POD = 'Pod default/web'


def refusal(call, *args):
    with pytest.raises(SpecError) as info:
        call(*args)
    message = str(info.value)
    assert message.startswith(POD + ': ')
    return message[len(POD) + 2:]


def parsed(raw):
    return resources.parse_resources(raw, AT, POD)


@pytest.mark.parametrize('text, expected', [
    ('128Mi', 128 << 20), ('1Gi', 1 << 30), ('1Ki', 1024), ('1Ei', 1 << 60),
    ('1k', 1000), ('1M', 10 ** 6), ('1G', 10 ** 9), ('1T', 10 ** 12), ('1E', 10 ** 18),
    ('129M', 129_000_000), ('123', 123), (123, 123), ('0', 0), ('+1Ki', 1024), ('-0', 0),
    ('1e3', 1000), ('1E3', 1000), ('12e+2', 1200), ('5e-1', 1), ('1.5Gi', 3 << 29),
    ('.5Ki', 512), ('1.Ki', 1024), ('1.5', 2), ('1m', 1), ('1000m', 1), ('1001m', 2),
    ('1500n', 1), ('0.1Ki', 103), ('1e-99999', 1), ('0e9999999', 0),
])
def test_memory_is_in_bytes_rounded_up(text, expected):
    assert resources.memory_bytes(text, AT + '.limits.memory', POD) == expected


@pytest.mark.parametrize('text, expected', [
    ('1', 1000), (1, 1000), (0.5, 500), ('0.5', 500), ('250m', 250), ('2k', 2_000_000),
    ('0.0001', 1), ('1500u', 2), ('1n', 1), ('100e-3', 100), ('0', 0), ('1.0001', 1001),
])
def test_cpu_is_in_millicores_rounded_up_to_1m(text, expected):
    assert resources.millicores(text, AT + '.limits.cpu', POD) == expected


@pytest.mark.parametrize('value', [
    '12 GB', '1GB', '1K', '1kb', 'Mi', '', '.', '1..5', '1e', '1e1.5', '1ki', ' 1', '1 ',
    '1Mi1', '0x10', 'inf', 'nan', '1_000', True, None, [1], float('inf'), '1e12345678901',
])
def test_anything_but_a_quantity_is_refused_naming_the_field(value):
    assert refusal(resources.memory_bytes, value, AT + '.limits.memory', POD) == (
        '%s.limits.memory: %r is not a quantity (such as 128Mi, 1G, 500m)' % (AT, value))


@pytest.mark.parametrize('text', ['-1', '-100m', '-0.5Gi', '-1e3'])
def test_negative_quantities_are_refused(text):
    assert refusal(resources.millicores, text, AT + '.requests.cpu', POD) == (
        "%s.requests.cpu: %r must be greater than or equal to 0" % (AT, text))


@pytest.mark.parametrize('text', ['8Ei', '1e19', '10E', '9223372036854775808'])
def test_quantities_beyond_an_int64_are_refused(text):
    assert 'is too large' in refusal(resources.memory_bytes, text, AT + '.limits.memory', POD)


def test_the_largest_int64_is_a_quantity():
    assert resources.memory_bytes('9223372036854775807', 'x', POD) == 2 ** 63 - 1


def test_no_resources_set_nothing():
    assert parsed(None) == parsed({}) == ContainerResources(None, None, None, None)


def test_limits_and_requests_are_read():
    assert parsed({'limits': {'memory': '256Mi', 'cpu': '1'},
                   'requests': {'memory': '64Mi', 'cpu': '250m'}}) == ContainerResources(
        memory_limit=256 << 20, cpu_limit=1000, memory_request=64 << 20, cpu_request=250)


def test_a_request_not_given_takes_its_limit():
    assert parsed({'limits': {'memory': '128Mi', 'cpu': '500m'}, 'requests': {'cpu': '100m'}}) \
        == ContainerResources(memory_limit=128 << 20, cpu_limit=500, memory_request=128 << 20,
                              cpu_request=100)


def test_a_request_without_a_limit_stays_without_one():
    assert parsed({'requests': {'memory': '1Gi'}}) == ContainerResources(memory_request=1 << 30)


@pytest.mark.parametrize('raw, words', [
    ({'limits': {'cpu': '500m'}, 'requests': {'cpu': '1'}},
     "requests.cpu: '1' must be less than or equal to cpu limit of 500m"),
    ({'limits': {'memory': '1Gi'}, 'requests': {'memory': '1025Mi'}},
     "requests.memory: '1025Mi' must be less than or equal to memory limit of 1Gi"),
    ({'limits': {'cpu': '1m'}, 'requests': {'cpu': '1.5m'}},
     "requests.cpu: '1.5m' must be less than or equal to cpu limit of 1m"),
])
def test_a_request_above_its_limit_is_refused_as_the_api_server_words_it(raw, words):
    assert refusal(parsed, raw) == '%s.%s' % (AT, words)


def test_a_request_equal_to_its_limit_in_other_words_is_accepted():
    assert parsed({'limits': {'cpu': '1', 'memory': '1Gi'},
                   'requests': {'cpu': '1000m', 'memory': '1073741824'}}).cpu_request == 1000


def test_a_memory_limit_below_6mi_is_refused_as_runc_cannot_start_under_it():
    assert refusal(parsed, {'limits': {'memory': '6291455'}}) == (
        "%s.limits.memory: '6291455' is below 6Mi, the least runc needs to start a container "
        "(under it the start fails)" % AT)
    assert parsed({'limits': {'memory': '6Mi'}}).memory_limit == 6 << 20
    assert parsed({'requests': {'memory': '1Mi'}}).memory_request == 1 << 20


def test_resources_podnet_ignores_are_accepted_and_dropped():
    assert parsed({'limits': {'ephemeral-storage': '1Gi', 'hugepages-2Mi': '4Mi',
                              'nvidia.com/gpu': 1, 'cpu': '1'},
                   'requests': {'example.com/foo': '2'}, 'claims': []}) == ContainerResources(
        cpu_limit=1000, cpu_request=1000)


@pytest.mark.parametrize('raw, words', [
    ({'limits': {'memroy': '1Gi'}}, 'limits.memroy: unknown resource (known: cpu, memory, '
     'ephemeral-storage, hugepages-<size>, or an extended resource such as nvidia.com/gpu)'),
    ({'requests': {'pods': '1'}}, 'requests.pods: unknown resource'),
    ({'requests': {'hugepages-': '1'}}, 'requests.hugepages-: unknown resource'),
    ({'limits': {'hugepages-big': '1'}}, "limits.hugepages-big: 'big' is not a quantity"),
    ({'limits': {'ephemeral-storage': '1 Gi'}},
     "limits.ephemeral-storage: '1 Gi' is not a quantity"),
    ({'limits': {'nvidia.com/gpu': '-1'}},
     "limits.nvidia.com/gpu: '-1' must be greater than or equal to 0"),
    ({'limits': ['cpu']}, 'limits: must be a mapping'),
    ({'limit': {'cpu': '1'}}, 'limit: unknown field (known: limits, requests, claims)'),
    ({'claims': [{'name': 'gpu'}]}, 'claims: not supported by podnet (only the default, [])'),
])
def test_unknown_names_and_bad_quantities_are_refused_naming_the_field(raw, words):
    assert refusal(parsed, raw).startswith('%s.%s' % (AT, words))


GUARANTEED = ContainerResources(128 << 20, 500, 128 << 20, 500)


@pytest.mark.parametrize('containers, qos', [
    ([ContainerResources()], 'BestEffort'),
    ([ContainerResources(), ContainerResources()], 'BestEffort'),
    ([ContainerResources(0, 0, 0, 0)], 'BestEffort'),  # kubelet counts amounts above 0 only
    ([GUARANTEED], 'Guaranteed'),
    ([GUARANTEED, GUARANTEED], 'Guaranteed'),
    ([GUARANTEED, ContainerResources()], 'Burstable'),
    ([ContainerResources(cpu_request=100)], 'Burstable'),
    ([ContainerResources(memory_limit=128 << 20, memory_request=128 << 20)], 'Burstable'),
    ([ContainerResources(128 << 20, 500, 64 << 20, 500)], 'Burstable'),
    ([ContainerResources(128 << 20, 0, 128 << 20, 0)], 'Burstable'),
])
def test_qos_class_is_the_kubelets(containers, qos):
    assert resources.qos_class(containers) == qos


def test_qos_of_parsed_limits_alone_is_guaranteed_as_requests_default_to_them():
    assert resources.qos_class([parsed({'limits': {'cpu': '1', 'memory': '64Mi'}})]) == 'Guaranteed'
