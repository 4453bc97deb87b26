"""What the lab's module server (roles/lab/files/module-server/podnet_module_*.py) takes
from ansible-core and Python beyond their public interfaces, checked
against a real AnsiballZ wrapper of a podnet module, as the pinned
ansible-core writes it. test_module_server.py runs the server with
wrappers of its own; this test fails when an ansible-core release changes
what those stand for:
- the wrapper names its module `module_fqn='ansible.legacy.podnet_...'`
  on a line of its own (the launcher serves podnet's modules only);
- it carries its zip as `zip_data='<base64>'` on a line of its own;
- the zip holds ansible/module_utils/basic.py, the AnsiballZ loader and
  podnet's module_utils, which the server preloads;
- Python has zipimport._compile_source (the launcher's code cache),
  threading._shutdown and atexit._run_exitfuncs (a forked module exits as
  an interpreter would).
Both pins of requirements.txt are checked: the one this venv has, and
ansible-core 2.19 on Debian's Python 3.11, which bin/bootstrap falls back
to (in a venv of its own under .lab/, made once)."""
import ast
import base64
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from podnet_testlib import ROOT

FILES = ROOT / 'roles' / 'lab' / 'files' / 'module-server'
FALLBACK = ROOT / '.lab' / 'contract-2.19'  # Python 3.11 with ansible-core 2.19, as bootstrap would pick
PYTHON_INTERNALS = "import atexit, threading, zipimport; " \
                   "print(all(map(callable, (zipimport._compile_source, threading._shutdown, atexit._run_exitfuncs))))"


def constant(path, name):
    """A constant of the server's files, read as they define it (they are
    scripts, not a package): a literal, or a re.compile of one."""
    [value] = [node.value for node in ast.parse(path.read_text()).body if isinstance(node, ast.Assign)
               and [getattr(t, 'id', None) for t in node.targets] == [name]]
    if isinstance(value, ast.Call):  # re.compile(pattern, re.FLAG)
        return re.compile(*[getattr(re, arg.attr) if isinstance(arg, ast.Attribute) else ast.literal_eval(arg)
                            for arg in value.args])
    return ast.literal_eval(value)


def fallback_venv():
    """The 2.19 pin's venv: made once from requirements.txt's marker, kept under .lab/."""
    python = FALLBACK / 'bin' / 'python'
    if not (FALLBACK / 'bin' / 'ansible').exists():
        if not Path('/usr/bin/python3.11').exists():
            pytest.fail('Debian 12 has /usr/bin/python3.11: bin/bootstrap falls back to it')
        subprocess.run(['/usr/bin/python3.11', '-m', 'venv', str(FALLBACK)], check=True)
        pin = next(line.split(';')[0].strip() for line in (ROOT / 'requirements.txt').read_text().splitlines()
                   if line.startswith('ansible-core==') and '< "3.12"' in line)
        subprocess.run([str(python), '-m', 'pip', 'install', '-q', pin], check=True, timeout=600)
    return FALLBACK / 'bin'


@pytest.fixture(scope='module', params=['this venv', 'the 3.11 fallback'])
def ansible(request):
    return Path(sys.executable).parent if request.param == 'this venv' else fallback_venv()


def wrapper_of(bin_dir, tmp_path, module='podnet_lab'):
    """The AnsiballZ wrapper ansible-core writes for a podnet module (run
    locally without its arguments: it stops at once, the wrapper stays)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_KEEP_REMOTE_FILES='1',
               ANSIBLE_PIPELINING='0', ANSIBLE_REMOTE_TMP=str(tmp_path / 'remote'))
    subprocess.run([str(bin_dir / 'ansible'), 'localhost', '-i', 'localhost,', '-c', 'local', '-m', module,
                    '-e', 'ansible_python_interpreter=%s' % (bin_dir / 'python')],
                   env=env, capture_output=True, text=True, timeout=120)
    [found] = (tmp_path / 'remote').glob('*/AnsiballZ_%s.py' % module)
    return found.read_bytes()


def test_the_wrapper_names_a_podnet_module_where_the_launcher_looks(ansible, tmp_path):
    markers = constant(FILES / 'podnet_module_python.py', 'SERVED_MODULES')
    wrapper = wrapper_of(ansible, tmp_path)
    assert [m for m in markers if m + b"lab'" in wrapper] == [markers[0]]  # library/'s; the collection's below


def test_the_wrapper_carries_its_zip_with_what_the_server_preloads(ansible, tmp_path):
    server = FILES / 'podnet_module_server.py'
    found = constant(server, 'ZIP_DATA').search(wrapper_of(ansible, tmp_path))
    assert found, 'no zip_data line the server can read'
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(found.group(1)))).namelist()
    assert set(constant(server, 'PRELOADED')) <= set(names)
    assert any(n.startswith(constant(server, 'PRELOADED_FOLDERS')[0]) for n in names)  # library/'s module


def test_python_has_what_a_forked_module_and_the_code_cache_use(ansible):
    done = subprocess.run([str(ansible / 'python'), '-c', PYTHON_INTERNALS], capture_output=True, text=True)
    assert done.stdout.strip() == 'True', done.stderr
