"""Reading manifest files within bounds: size, expanded node count and
depth are refused naming the file before anything is constructed."""
import json
import time

import pytest
from ansible.module_utils.podnet.plan import manifest_files, manifests
from podnet_testlib import ROOT
from samples import refusal

POLICY_HEAD = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: laughs
  annotations:
"""


def billion_laughs():
    """Nine levels of ten aliases each: 10**9 strings once expanded, in a
    file of about a kilobyte."""
    lines = ['    l0: &l0 "lol"']
    for level in range(1, 10):
        lines.append('    l%d: &l%d [%s]' % (level, level, ', '.join(['*l%d' % (level - 1)] * 10)))
    return POLICY_HEAD + '\n'.join(lines) + '\nspec: {podSelector: {}}\n'


def test_a_billion_laughs_in_a_policy_is_refused_naming_the_file(tmp_path):
    file = tmp_path / 'bomb.yaml'
    file.write_text(billion_laughs())
    started = time.monotonic()
    message = refusal([file])
    assert message.startswith('%s document 1: expands to more than' % file)
    assert 'alias' in message
    assert time.monotonic() - started < 60  # a guard against a hang, not a benchmark


def test_a_few_aliases_are_still_fine(tmp_path):
    file = tmp_path / 'anchors.yaml'
    file.write_text(POLICY_HEAD + '    a: &a "x"\n    b: *a\nspec: {podSelector: {}}\n')
    [policy] = manifests.load([file]).policies
    assert policy['metadata']['annotations'] == {'a': 'x', 'b': 'x'}


def test_a_recursive_alias_is_refused(tmp_path):
    file = tmp_path / 'loop.yaml'
    file.write_text(POLICY_HEAD + '    loop: &loop [*loop]\nspec: {podSelector: {}}\n')
    assert 'nested deeper than %d levels' % manifest_files.MAX_DEPTH in refusal([file])


def test_a_file_over_the_byte_limit_is_refused_naming_the_limit(tmp_path):
    file = tmp_path / 'big.yaml'
    file.write_text('# padding\n' * (manifest_files.MAX_BYTES // 10 + 1))
    assert refusal([file]) == ('%s: larger than the 4194304 bytes (4 MiB) a manifest file '
                               'may hold' % file)


@pytest.mark.parametrize('depth', [manifest_files.MAX_DEPTH + 1, 5000])
def test_deep_nesting_is_refused(tmp_path, depth):
    file = tmp_path / 'deep.yaml'
    file.write_text(POLICY_HEAD + '    deep: ' + '[' * depth + ']' * depth
                    + '\nspec: {podSelector: {}}\n')
    message = refusal([file])
    assert message.startswith(str(file)) and 'nested' in message


@pytest.mark.parametrize('depth', [manifest_files.MAX_DEPTH + 1, 100000])
def test_deep_json_is_refused(tmp_path, depth):
    file = tmp_path / 'deep.json'
    file.write_text('{"kind": ' + '[' * depth + ']' * depth + '}')
    message = refusal([file])
    assert message.startswith(str(file)) and 'nested' in message


def test_many_nodes_without_aliases_are_counted_too(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_files, 'MAX_NODES', 50)
    file = tmp_path / 'wide.json'
    file.write_text(json.dumps({'kind': 'Pod', 'items': list(range(60))}))
    assert 'expands to more than 50 nodes' in refusal([file])


def test_libyaml_and_pure_python_read_the_same_manifests_and_limits(tmp_path, monkeypatch):
    """libyaml's loader when PyYAML has it (five times faster on 1,000 pods),
    PyYAML's own otherwise: the same objects and the same refusals."""
    assert manifest_files.SAFE_LOADER is (manifest_files.yaml.CSafeLoader if manifest_files.yaml.__with_libyaml__
                                          else manifest_files.yaml.SafeLoader)
    (tmp_path / 'deep.yaml').write_text(POLICY_HEAD + '    deep: ' + '[' * 5000 + ']' * 5000 + '\n')
    read, refused = {}, {}
    for loader in {manifest_files.SAFE_LOADER, manifest_files.yaml.SafeLoader}:
        monkeypatch.setattr(manifest_files, 'SAFE_LOADER', loader)
        read[loader] = list(manifest_files.documents([ROOT / 'manifests' / name for name in ('seed', 'netpol-model')]))
        refused[loader] = refusal([tmp_path / 'deep.yaml'])
    objects = next(iter(read.values()))
    assert len(objects) > 5 and all(found == objects for found in read.values())
    assert all(r.startswith(str(tmp_path / 'deep.yaml')) and 'nested' in r for r in refused.values()), refused
