"""roles/lab/files/module-server/podnet_module_python.py, the Python lab nodes run modules
with: code compiled from a module's zip is kept by content under HOME and
loaded from there next time, with the paths of the zip it now runs from."""
import hashlib
import importlib.util
import marshal
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / 'roles' / 'lab' / 'files' / 'module-server' / 'podnet_module_python.py'
SOURCE = b"VALUE = 42\n\ndef boom():\n    raise ValueError('boom')\n"
# Stands for an AnsiballZ wrapper: imports from its zip, as a module does.
WRAPPER = """import sys, traceback
sys.path.insert(0, %r)
import pkgx.mod
print(pkgx.mod.VALUE)
try:
    pkgx.mod.boom()
except ValueError as exc:
    print(traceback.extract_tb(exc.__traceback__)[-1].filename)
print(hasattr(sys.modules['__main__'], '__file__'), sys.argv)
"""


def make_zip(path):
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('pkgx/__init__.py', '')
        z.writestr('pkgx/mod.py', SOURCE)
    return str(path)


def run(home, wrapper, *args):
    done = subprocess.run([sys.executable, str(RUNNER), *args], input=wrapper, text=True,
                          capture_output=True, env=dict(os.environ, HOME=str(home), PODNET_MODULE_SERVER='0'))
    assert done.returncode == 0, done.stderr
    return done.stdout.split('\n')


def cache_entry(home, source):
    key = hashlib.sha256(importlib.util.MAGIC_NUMBER + b'0' + source).hexdigest()  # no -O
    return home / '.cache' / 'podnet-modules' / key


def test_compiled_code_is_kept_and_loaded_again_with_the_zip_it_runs_from(tmp_path):
    first = make_zip(tmp_path / 'first.zip')
    value, where, main = run(tmp_path, WRAPPER % first)[:3]
    assert (value, where, main) == ('42', first + '/pkgx/mod.py', "False ['']")
    entry = cache_entry(tmp_path, SOURCE)
    assert entry.exists() and oct(entry.parent.stat().st_mode & 0o777) == '0o700'
    # The entry is what runs: replaced by other code, the other code runs,
    # and a traceback names the zip of this run, not of the one that compiled it.
    entry.write_bytes(marshal.dumps(compile(SOURCE.replace(b'42', b'7'), 'elsewhere.py', 'exec')))
    second = make_zip(tmp_path / 'second.zip')
    assert run(tmp_path, WRAPPER % second)[:2] == ['7', second + '/pkgx/mod.py']


def test_an_unreadable_entry_is_compiled_again(tmp_path):
    entry = cache_entry(tmp_path, SOURCE)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b'not marshal data')
    assert run(tmp_path, WRAPPER % make_zip(tmp_path / 'm.zip'))[0] == '42'
    assert marshal.loads(entry.read_bytes()).co_filename.endswith('m.zip/pkgx/mod.py')


def test_a_wrapper_file_runs_as_the_script_with_its_arguments(tmp_path):
    wrapper = tmp_path / 'AnsiballZ_x.py'
    wrapper.write_text(WRAPPER % make_zip(tmp_path / 'm.zip'))
    lines = run(tmp_path, '', str(wrapper), 'execute')
    assert lines[0] == '42' and lines[2] == "True ['%s', 'execute']" % wrapper


def test_an_entry_that_is_not_code_is_compiled_again(tmp_path):
    """Regression: an entry holding other marshal data broke every module run."""
    entry = cache_entry(tmp_path, SOURCE)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(marshal.dumps(42))
    assert run(tmp_path, WRAPPER % make_zip(tmp_path / 'm.zip'))[0] == '42'


def test_without_a_writable_cache_the_module_still_runs(tmp_path):
    home = tmp_path / 'home'
    home.mkdir()
    (home / '.cache').write_text('a file where the cache folder would go')
    assert run(home, WRAPPER % make_zip(tmp_path / 'm.zip'))[0] == '42'


def test_the_launcher_finds_the_venv_however_it_is_called(tmp_path):
    """Ansible calls it by absolute path; by hand it may be relative."""
    wrapper = tmp_path / 'w.py'
    wrapper.write_text('import sys; print(sys.prefix)')
    for cwd, path in ((ROOT, RUNNER.parent / 'podnet-module-python'),
                      (ROOT / 'roles', './lab/files/module-server/podnet-module-python')):
        done = subprocess.run([str(path), str(wrapper)], cwd=cwd, capture_output=True, text=True,
                              env=dict(os.environ, HOME=str(tmp_path)))
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()).resolve() == (ROOT / '.venv').resolve()
