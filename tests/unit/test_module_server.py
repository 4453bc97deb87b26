"""roles/lab/files/module-server/podnet_module_server.py: a lab node's module server.
The first pipelined run starts it; later runs are forked from it with
their streams, arguments, environment and exit status, their code is the
code they carry, and the server retires when that code changes."""
import base64
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / 'roles' / 'lab' / 'files' / 'module-server'
# Stands for an AnsiballZ wrapper of a podnet module: writes its zip as
# *_payload.zip, puts it first on sys.path and imports from it, as
# Ansible's does.
WRAPPER = """import os, sys, tempfile
preloaded = 'UTILS.thing' in sys.modules
folder = tempfile.mkdtemp(dir=os.environ['PAYLOADS'])
payload = os.path.join(folder, 'ansible_x_payload.zip')
with open(payload, 'wb') as f:
    f.write(__import__('base64').b64decode(ZIP))
sys.path.insert(0, payload)
from UTILS import thing
print(thing.VALUE, preloaded, os.getppid(), os.getcwd(), os.environ.get('MARK'), sys.argv)
sys.stderr.write('to stderr\\n')
%s
module_fqn='MODULES%s'
zip_data='%s'
"""
# (module_utils, modules): podnet's from the tree (library/), and from the collection.
TREE = ('ansible.module_utils.podnet', 'ansible.legacy.podnet_')
COLLECTION = ('ansible_collections.podnet.testbed.plugins.module_utils.podnet',
              'ansible_collections.podnet.testbed.plugins.modules.podnet_')


def module_zip(value, utils):
    buffer = io.BytesIO()
    packages = utils.split('.')
    with zipfile.ZipFile(buffer, 'w') as z:
        for depth in range(1, len(packages) + 1):
            z.writestr('/'.join(packages[:depth] + ['__init__.py']), '')
        z.writestr('/'.join(packages + ['thing.py']), 'VALUE = %r\n' % value)
    return base64.b64encode(buffer.getvalue()).decode()


def wrapper(value, tail='', module='test', layout=TREE):
    utils, modules = layout
    data = module_zip(value, utils)
    text = WRAPPER.replace('UTILS', utils).replace('MODULES', modules)
    return (text % (tail, module, data)).replace('ZIP)', repr(data) + ')', 1)


@pytest.fixture
def node(tmp_path):
    """A copy of the launcher and server, a folder standing for a node's
    /run/podnet, and the servers started in it, stopped after."""
    scripts = tmp_path / 'files'
    scripts.mkdir()
    for name in ('podnet_module_python.py', 'podnet_module_server.py'):
        shutil.copy(FILES / name, scripts / name)
    run = tmp_path / 'run' / 'podnet'
    run.mkdir(parents=True)
    env = dict(os.environ, HOME=str(tmp_path), PODNET_MODULE_SERVER_DIR=str(run / 'module-server'),
               MARK='set', PAYLOADS=str(tmp_path), LAUNCHER=str(scripts / 'podnet_module_python.py'))
    yield env, run / 'module-server'
    for pid in servers(run):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while servers(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not servers(run)
    assert sorted(os.listdir(run / 'module-server')) in ([], ['error'])  # no zip or socket left


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
    return subprocess.run([sys.executable, env['LAUNCHER']], input=text, text=True, capture_output=True,
                          env=env, cwd=cwd, timeout=30)


def start_server(env, folder, value='one'):
    launch(env, wrapper(value))
    return serving(folder)


def serving(folder):
    """The server a first run started, once it listens."""
    wait_for(lambda: (folder / 'socket').exists() and len(servers(folder.parent)) == 1, 'no server started')
    return servers(folder.parent)[0]


def fields(done):
    assert done.returncode == 0, done.stderr
    value, preloaded, ppid, cwd, mark, argv = done.stdout.split(' ', 5)
    return value, preloaded == 'True', int(ppid), cwd, mark, argv.strip()


def test_the_first_run_starts_a_server_and_every_run_is_forked_from_it(node, tmp_path):
    env, folder = node
    first = launch(env, wrapper('one'))
    server = serving(folder)
    # The first run waited for the server it started instead of making the
    # same imports itself (at 20 nodes, 0.11 s of CPU a node).
    assert fields(first)[:3] == ('one', True, server)
    second = launch(env, wrapper('one'), cwd=tmp_path)
    # What the launcher would have run by itself: same output, its folder,
    # environment and arguments; but in a child of the server, which had
    # podnet's module_utils imported already.
    assert fields(second) == ('one', True, server, str(tmp_path), 'set', "['']")
    assert second.stderr == 'to stderr\n'
    assert oct(folder.stat().st_mode & 0o777) == '0o700'


def test_a_module_of_the_collection_is_served_as_one_of_the_tree(node):
    env, folder = node
    first = launch(env, wrapper('one', layout=COLLECTION))
    server = serving(folder)
    # Its module_utils were preloaded from its zip, by their collection names.
    assert fields(launch(env, wrapper('one', layout=COLLECTION)))[:3] == fields(first)[:3] == ('one', True, server)


def test_the_exit_status_an_error_and_a_killing_signal_come_back_as_they_would(node):
    env, folder = node
    start_server(env, folder)
    assert launch(env, wrapper('one', 'sys.exit(3)')).returncode == 3
    failed = launch(env, wrapper('one', 'raise ValueError("boom")'))
    assert failed.returncode == 1 and 'ValueError: boom' in failed.stderr
    killed = launch(env, wrapper('one', 'import signal; os.kill(os.getpid(), signal.SIGKILL)'))
    assert killed.returncode == -signal.SIGKILL


def test_the_module_has_the_files_it_would_have_open_and_no_more(node):
    env, folder = node
    listing = 'print(sorted(os.listdir("/proc/self/fd")))'
    alone = launch(dict(env, PODNET_MODULE_SERVER='0'), wrapper('one', listing))
    start_server(env, folder)
    served = launch(env, wrapper('one', listing))
    assert fields(served)[1] and served.stdout.splitlines()[-1] == alone.stdout.splitlines()[-1]


def test_new_code_is_run_as_sent_and_the_server_retires_for_one_with_it(node):
    env, folder = node
    old = start_server(env, folder)
    changed = launch(env, wrapper('two'))
    assert fields(changed)[:2] == ('two', False)  # run by the launcher, not the old server
    wait_gone(old, folder)
    start_server(env, folder, 'two')
    assert fields(launch(env, wrapper('two')))[:2] == ('two', True)


def test_a_changed_launcher_retires_the_server(node):
    env, folder = node
    old = start_server(env, folder)
    launcher = Path(env['LAUNCHER'])
    launcher.write_text(launcher.read_text() + '\n# changed\n')
    assert fields(launch(env, wrapper('one')))[:2] == ('one', False)
    wait_gone(old, folder)


def test_a_run_with_another_start_up_environment_runs_by_itself(node):
    env, folder = node
    start_server(env, folder)
    done = launch(dict(env, TZ='Asia/Tokyo'), wrapper('one', 'import time; print(time.strftime("%Z"))'))
    assert fields(done)[1] is False and done.stdout.splitlines()[-1] == 'JST'


def test_modules_other_than_podnets_run_by_themselves(node):
    env, folder = node
    start_server(env, folder)
    assert fields(launch(env, wrapper('one', module='x').replace('legacy.podnet_x', 'modules.ping')))[1] is False


def wait_gone(pid, folder):
    deadline = time.monotonic() + 10
    while pid in servers(folder.parent):
        assert time.monotonic() < deadline, 'the server did not retire'
        time.sleep(0.05)


def test_a_signal_to_the_launcher_reaches_the_module(node, tmp_path):
    env, folder = node
    start_server(env, folder)  # the node fixture stops it
    flag = tmp_path / 'started'
    tail = """import signal, time
def stopped(number, frame):
    open(%r, 'a').write('got %%d\\n' %% number)
    sys.exit(7)
signal.signal(signal.SIGTERM, stopped)
open(%r, 'w').close()
time.sleep(30)""" % (str(tmp_path / 'signals'), str(flag))
    launcher = subprocess.Popen([sys.executable, env['LAUNCHER']], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
    launcher.stdin.write(wrapper('one', tail))
    launcher.stdin.close()
    wait_for(flag.exists, 'the module did not start')
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=10) == 7
    assert (tmp_path / 'signals').read_text() == 'got %d\n' % signal.SIGTERM


def test_a_module_whose_launcher_is_killed_is_hung_up(node, tmp_path):
    env, folder = node
    server = start_server(env, folder)
    flag = tmp_path / 'started'
    launcher = subprocess.Popen([sys.executable, env['LAUNCHER']], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
    launcher.stdin.write(wrapper('one', 'open(%r, "w").close()\nimport time\ntime.sleep(30)' % str(flag)))
    launcher.stdin.close()
    wait_for(flag.exists, 'the module did not start')
    [module] = children(server)
    launcher.kill()
    launcher.wait(timeout=10)
    wait_for(lambda: not Path('/proc/%d' % module).exists(), 'the module outlived its launcher')


def wait_for(condition, why):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def test_a_server_that_cannot_start_leaves_the_run_to_the_launcher_at_once(node):
    """A seed the server cannot read (here its zip_data is not base64): the
    server exits without listening, and at the end of file on its pipe, not
    after START_WAIT_SECONDS, the launcher runs the module itself."""
    env, folder = node
    unreadable = re.sub(r"zip_data='[^']*'", "zip_data='!'", wrapper('one'))
    started = time.monotonic()
    for _ in range(2):
        assert fields(launch(env, unreadable))[:2] == ('one', False)
    assert time.monotonic() - started < 5
    wait_for(lambda: not servers(folder.parent), 'a server outlived its unreadable seed')


def test_without_a_node_run_folder_no_server_starts(tmp_path):
    """The controller (no /run/podnet) runs everything itself and makes nothing."""
    env = dict(os.environ, HOME=str(tmp_path), PAYLOADS=str(tmp_path), LAUNCHER=str(FILES / 'podnet_module_python.py'),
               PODNET_MODULE_SERVER_DIR=str(tmp_path / 'none' / 'module-server'))
    for _ in range(2):
        assert fields(launch(env, wrapper('one')))[:2] == ('one', False)
    assert not (tmp_path / 'none').exists()
