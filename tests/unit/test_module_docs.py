"""Every module's and role's documentation renders in ansible-doc without a
warning, modules with examples and return values and their check and diff
mode support, and no description is cut short by the YAML it is written in."""
import functools
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.plugin_docs import read_docstring
from podnet_testlib import playbook_env

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / 'library').glob('*.py'))
ROLES = sorted(p.parts[-3] for p in (ROOT / 'roles').glob('*/meta/argument_specs.yml'))
# ansible-core 2.21 warns about a collection of its own on every role lookup.
CORE_WARNING = re.compile(r"\[WARNING\]: Collection at '[^']*/ansible/_internal/[^']*' does not have")


@functools.cache
def ansible_doc(kind):
    """ansible-doc's JSON of every module or role, as the project's
    ansible.cfg finds them; fails on an error or on any warning of Ansible's."""
    names = MODULES if kind == 'module' else ROLES
    doc_cli = str(Path(sys.executable).parent / 'ansible-doc')
    done = subprocess.run([doc_cli, '--json', '-t', kind, *names], capture_output=True, text=True,
                          cwd=ROOT, env=playbook_env())
    said = CORE_WARNING.sub('', done.stderr)
    assert done.returncode == 0 and not re.search(r'\[(WARNING|DEPRECATION WARNING|ERROR)\]', said), \
        done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_renders(module):
    doc = ansible_doc('module')[module]
    assert doc['doc']['short_description']
    assert doc['examples'].strip() and doc['return']
    assert set(doc['doc']['attributes']) >= {'check_mode', 'diff_mode'}


# Result keys Ansible keeps for itself: a module's value there is replaced
# (`failed` turned into a bool, with a warning), never returned.
RESERVED_RESULT_KEYS = {'failed', 'changed', 'skipped', 'unreachable', 'invocation'}


@pytest.mark.parametrize('module', MODULES)
def test_no_module_returns_under_a_key_ansible_keeps(module):
    assert not RESERVED_RESULT_KEYS & set(ansible_doc('module')[module]['return'] or {})


@pytest.mark.parametrize('role', ROLES)
def test_ansible_doc_renders_the_role(role):
    doc = ansible_doc('role')[role]
    assert 'main' in doc['entry_points']


ACTIONS = sorted(p.stem for p in (ROOT / 'plugins' / 'action').glob('podnet_*.py'))


@pytest.mark.parametrize('module', ACTIONS)
def test_an_action_module_documents_the_options_its_plugin_takes(module):
    """podnet_cluster and podnet_run_lock run as action plugins on the
    controller; library/ keeps their documentation, which must say what the
    plugin's argument spec accepts."""
    from podnet_testlib import action_plugin
    plugin = action_plugin(module)
    options = ansible_doc('module')[module]['doc']['options']
    documented = {name: {k: o.get(k) for k in ('type', 'default', 'choices', 'required', 'elements')}
                  for name, o in options.items()}
    taken = {name: {k: o.get(k, False if k == 'required' else None)
                    for k in ('type', 'default', 'choices', 'required', 'elements')}
             for name, o in plugin.ARGUMENT_SPEC.items()}
    documented = {n: dict(o, required=bool(o['required'])) for n, o in documented.items()}
    assert documented == taken


# The keys Ansible documents for an option, a return value and an attribute.
# In a flow mapping ({description: a, b, type: str}) an unquoted comma ends
# the description, and what follows becomes a key of its own, with no value.
OPTION_KEYS = {'description', 'type', 'required', 'default', 'choices', 'elements', 'aliases',
               'suboptions', 'options', 'apply_defaults', 'version_added'}
RETURN_KEYS = {'description', 'returned', 'type', 'sample', 'contains', 'elements', 'version_added'}
ATTRIBUTE_KEYS = {'description', 'support', 'details', 'platforms', 'membership'}


def entries(spec, keys, nested, where):
    """(where, entry, keys) of every entry of spec and of its nested specs."""
    for name, entry in (spec or {}).items():
        assert isinstance(entry, dict), '%s.%s: %r' % (where, name, entry)
        yield '%s.%s' % (where, name), entry, keys
        yield from entries(entry.get(nested), keys, nested, '%s.%s' % (where, name))


def doc_fragment():
    path = ROOT / 'plugins' / 'doc_fragments' / 'podnet.py'
    spec = importlib.util.spec_from_file_location('podnet_doc_fragment', path)
    fragment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fragment)
    return yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)


def documented():
    """(where, entry, the keys it may have) of each module, the doc fragment
    and each role entry point, and of every option, return value and
    attribute below them; the first have no key list (None)."""
    for name in MODULES:
        read = read_docstring(str(ROOT / 'library' / (name + '.py')))
        yield name, read['doc'], None
        yield from entries(read['doc'].get('options'), OPTION_KEYS, 'suboptions', name)
        yield from entries(read['doc'].get('attributes'), ATTRIBUTE_KEYS, None, name)
        yield from entries(read['returndocs'], RETURN_KEYS, 'contains', name + ' returns')
    yield from entries(doc_fragment().get('options'), OPTION_KEYS, 'suboptions', 'doc fragment')
    for role in ROLES:
        specs = yaml.safe_load((ROOT / 'roles' / role / 'meta' / 'argument_specs.yml').read_text())
        for entry_point, spec in specs['argument_specs'].items():
            where = 'role %s %s' % (role, entry_point)
            yield where, spec, None
            yield from entries(spec.get('options'), OPTION_KEYS, 'options', where)


def test_no_entry_holds_a_key_ansible_does_not_know():
    strays = ['%s: %r' % (where, key) for where, entry, keys in documented() if keys
              for key, value in entry.items() if key not in keys or value is None]
    assert not strays, 'cut short by an unquoted comma (quote the description):\n' + '\n'.join(strays)


def test_every_description_ends_as_a_sentence():
    """What follows an unquoted ', ' in a flow mapping, or ' #' anywhere, is
    not part of the description: the sentence it cuts has no end."""
    cut = ['%s: %r' % (where, text) for where, entry, _ in documented()
           for text in ([entry['description']] if isinstance(entry.get('description'), str)
                        else entry.get('description') or [])
           if not text.rstrip().endswith(('.', ')'))]
    assert not cut, 'cut short (quote the description):\n' + '\n'.join(cut)


def test_ansible_itself_starts_without_a_python_warning():
    """A new user's first command must not open with a library's warning
    (cryptography 51 deprecates DSA, which ansible-core imports at start:
    requirements.txt pins the version before)."""
    cli = str(Path(sys.executable).parent / 'ansible-playbook')
    done = subprocess.run([cli, '--version'], capture_output=True, text=True, cwd=ROOT, env=playbook_env())
    assert done.returncode == 0 and 'Warning' not in done.stderr, done.stderr
