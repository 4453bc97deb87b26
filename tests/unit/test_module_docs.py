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
