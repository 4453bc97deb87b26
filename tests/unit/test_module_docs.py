"""Every module's documentation renders in ansible-doc, with examples and
return values, and declares its check and diff mode support."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / 'library').glob('*.py'))


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'))
    doc_cli = str(Path(sys.executable).parent / 'ansible-doc')
    done = subprocess.run([doc_cli, '--json', module], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True)
    doc = json.loads(done.stdout)[module]
    assert doc['doc']['short_description']
    assert doc['examples'].strip() and doc['return']
    assert set(doc['doc']['attributes']) >= {'check_mode', 'diff_mode'}


ACTIONS = sorted(p.stem for p in (ROOT / 'plugins' / 'action').glob('podnet_*.py'))


@pytest.mark.parametrize('module', ACTIONS)
def test_an_action_module_documents_the_options_its_plugin_takes(module):
    """podnet_cluster and podnet_run_lock run as action plugins on the
    controller; library/ keeps their documentation, which must say what the
    plugin's argument spec accepts."""
    from podnet_testlib import action_plugin
    plugin = action_plugin(module)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'))
    doc_cli = str(Path(sys.executable).parent / 'ansible-doc')
    done = subprocess.run([doc_cli, '--json', module], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True)
    options = json.loads(done.stdout)[module]['doc']['options']
    documented = {name: {k: o.get(k) for k in ('type', 'default', 'choices', 'required', 'elements')}
                  for name, o in options.items()}
    taken = {name: {k: o.get(k, False if k == 'required' else None)
                    for k in ('type', 'default', 'choices', 'required', 'elements')}
             for name, o in plugin.ARGUMENT_SPEC.items()}
    documented = {n: dict(o, required=bool(o['required'])) for n, o in documented.items()}
    assert documented == taken
