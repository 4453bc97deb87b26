"""roles/lab/files/podnet_module_server.py: a lab node's module server.
The first pipelined run starts it; later runs are forked from it with
their streams, arguments, environment and exit status, their code is the
code they carry, and the server retires when that code changes."""
import base64
import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / 'roles' / 'lab' / 'files' / 'podnet_module_python.py'
# Stands for an AnsiballZ wrapper: writes its zip as *_payload.zip, puts it
# first on sys.path and imports from it, as Ansible's does.
WRAPPER = """import os, sys, tempfile
preloaded = 'ansible.module_utils.thing' in sys.modules
folder = tempfile.mkdtemp(dir=os.environ['PAYLOADS'])
payload = os.path.join(folder, 'ansible_x_payload.zip')
with open(payload, 'wb') as f:
    f.write(__import__('base64').b64decode(ZIP))
sys.path.insert(0, payload)
from ansible.module_utils import thing
print(thing.VALUE, preloaded, os.getppid(), os.getcwd(), os.environ.get('MARK'), sys.argv)
sys.stderr.write('to stderr\\n')
%s
zip_data='%s'
"""


def module_zip(value):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as z:
        z.writestr('ansible/__init__.py', '')
        z.writestr('ansible/module_utils/__init__.py', '')
        z.writestr('ansible/module_utils/thing.py', 'VALUE = %r\n' % value)
    return base64.b64encode(buffer.getvalue()).decode()


def wrapper(value, tail=''):
    data = module_zip(value)
    return (WRAPPER % (tail, data)).replace('ZIP)', repr(data) + ')', 1)


@pytest.fixture
def node(tmp_path):
    """A folder standing for a node's /run/podnet, and the servers started in it, stopped after."""
    run = tmp_path / 'run' / 'podnet'
    run.mkdir(parents=True)
    env = dict(os.environ, HOME=str(tmp_path), PODNET_MODULE_SERVER_DIR=str(run / 'module-server'),
               MARK='set', PAYLOADS=str(tmp_path))
    yield env, run / 'module-server'
    for pid in servers(run):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while servers(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not servers(run)


def processes():
    """(pid, parent pid, command line) of every process."""
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            stat = Path('/proc/%s/stat' % pid).read_text()
            cmdline = Path('/proc/%s/cmdline' % pid).read_bytes()
        except OSError:
            continue
        yield int(pid), int(stat.rsplit(')', 1)[1].split()[1]), cmdline


def servers(run):
    return [pid for pid, _, cmdline in processes()
            if b'podnet_module_server.py' in cmdline and str(run).encode() in cmdline]


def children(parent):
    return [pid for pid, ppid, _ in processes() if ppid == parent]


def launch(env, text, cwd='/'):
    return subprocess.run([sys.executable, str(LAUNCHER)], input=text, text=True, capture_output=True,
                          env=env, cwd=cwd, timeout=30)


def wait_for_server(folder):
    deadline = time.monotonic() + 10
    while not (folder / 'socket').exists():
        assert time.monotonic() < deadline, 'no server started'
        time.sleep(0.02)


def fields(done):
    value, preloaded, ppid, cwd, mark, argv = done.stdout.split(' ', 5)
    return value, preloaded == 'True', int(ppid), cwd, mark, argv.strip()


def test_the_first_run_starts_a_server_and_the_next_runs_are_forked_from_it(node, tmp_path):
    env, folder = node
    first = launch(env, wrapper('one'))
    assert first.returncode == 0, first.stderr
    value, preloaded, _, _, _, _ = fields(first)
    assert (value, preloaded) == ('one', False)
    wait_for_server(folder)
    [server] = servers(folder.parent)
    second = launch(env, wrapper('one'), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # What the launcher would have run by itself: same output, its folder,
    # environment and arguments; but in a child of the server, which had
    # the module_utils imported already.
    assert fields(second) == ('one', True, server, str(tmp_path), 'set', "['']")
    assert second.stderr == 'to stderr\n'
    assert oct(folder.stat().st_mode & 0o777) == '0o700'


def test_the_exit_status_and_an_uncaught_error_come_back_as_they_would(node):
    env, folder = node
    launch(env, wrapper('one'))
    wait_for_server(folder)
    assert launch(env, wrapper('one', 'sys.exit(3)')).returncode == 3
    failed = launch(env, wrapper('one', 'raise ValueError("boom")'))
    assert failed.returncode == 1 and 'ValueError: boom' in failed.stderr


def test_new_code_is_run_as_sent_and_the_server_retires_for_one_with_it(node):
    env, folder = node
    launch(env, wrapper('one'))
    wait_for_server(folder)
    [old] = servers(folder.parent)
    changed = launch(env, wrapper('two'))
    assert fields(changed)[:2] == ('two', False)  # run by the launcher, not the old server
    deadline = time.monotonic() + 10
    while old in servers(folder.parent):
        assert time.monotonic() < deadline, 'the server with the old code did not retire'
        time.sleep(0.05)
    launch(env, wrapper('two'))
    wait_for_server(folder)
    assert fields(launch(env, wrapper('two')))[:2] == ('two', True)


def test_a_signal_to_the_launcher_reaches_the_module(node, tmp_path):
    env, folder = node
    launch(env, wrapper('one'))
    wait_for_server(folder)
    flag = tmp_path / 'started'
    tail = ('open(%r, "w").close()\nimport time\ntime.sleep(30)' % str(flag))
    for how in (signal.SIGTERM, signal.SIGKILL):  # relayed; hung up (the launcher is gone)
        flag.unlink(missing_ok=True)
        launcher = subprocess.Popen([sys.executable, str(LAUNCHER)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        launcher.stdin.write(wrapper('one', tail))
        launcher.stdin.close()
        deadline = time.monotonic() + 10
        while not flag.exists():
            assert time.monotonic() < deadline, 'the module did not start'
            time.sleep(0.02)
        module = children(servers(folder.parent)[0])
        assert len(module) == 1
        launcher.send_signal(how)
        launcher.wait(timeout=10)
        deadline = time.monotonic() + 10
        while Path('/proc/%d' % module[0]).exists():
            assert time.monotonic() < deadline, 'the module outlived its launcher (%s)' % how
            time.sleep(0.02)


def test_without_a_node_run_folder_no_server_starts(tmp_path):
    """The controller (no /run/podnet) runs everything itself and makes nothing."""
    env = dict(os.environ, HOME=str(tmp_path), PAYLOADS=str(tmp_path),
               PODNET_MODULE_SERVER_DIR=str(tmp_path / 'none' / 'module-server'))
    for _ in range(2):
        done = launch(env, wrapper('one'))
        assert fields(done)[:2] == ('one', False)
    assert not (tmp_path / 'none').exists()
