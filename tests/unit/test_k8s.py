"""The shared Kubernetes rules: field sets, and the pod hostname."""
import pytest
from ansible.module_utils.podnet.core import k8s
from ansible.module_utils.podnet.core.errors import SpecError


def refusal(call, *args, **kwargs):
    with pytest.raises(SpecError) as info:
        call(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize('name, hostname', [
    ('web', 'web'),
    ('a' * 63, 'a' * 63),
    ('a' * 100, 'a' * 63),
    ('b' * 250, 'b' * 63),
    ('a' * 60 + '-.-x' + 'a' * 50, 'a' * 60),  # the cut ends in '-.-': trimmed
    ('a' * 62 + '.b', 'a' * 62),
])
def test_hostname_is_cut_to_63_characters_as_the_kubelet_does(name, hostname):
    assert k8s.hostname(name) == hostname


def test_fields_sorts_known_ignored_neutral_and_unknown():
    known, ignored, neutral = ('a',), ('b',), {'c': [], 'd': False}
    raw = {'a': 1, 'b': 2, 'c': [], 'd': None}
    assert k8s.fields(raw, 'spec', 'Pod x/y', known, ignored, neutral) is raw
    assert k8s.fields(None, 'spec', 'Pod x/y', known) == {}
    assert refusal(k8s.fields, {'c': [1]}, 'spec', 'Pod x/y', known, ignored, neutral) == \
        'Pod x/y: spec.c: not supported by podnet (only the default, [])'
    assert refusal(k8s.fields, {'d': True}, 'spec', 'Pod x/y', known, ignored, neutral) == \
        'Pod x/y: spec.d: not supported by podnet (only the default, false)'
    assert refusal(k8s.fields, {'e': 1}, 'spec', 'Pod x/y', known, ignored, neutral) == \
        'Pod x/y: spec.e: unknown field (known: a, b, c, d)'
    assert refusal(k8s.fields, [], 'spec', 'Pod x/y', known) == 'Pod x/y: spec: must be a mapping'
