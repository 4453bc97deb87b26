"""The podnet_warm callback: Ansible loads it from the project's
callback_plugins without enabling, and the workers it forks for tasks then
find the Jinja filters loaded (issue "Scale": each worker loaded them
itself, running `ldconfig -p` for the core filters' crypt support)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# ansible-playbook, with an audit hook that every forked worker inherits:
# it notes each `ldconfig` started, and whether a worker started it.
WRAPPER = r'''
import os, sys
main_pid, notes = os.getpid(), sys.argv[1]
def note(event, args):
    if event == 'subprocess.Popen' and 'ldconfig' in str(args[1]):
        with open(notes, 'a') as f:
            f.write('worker\n' if os.getpid() != main_pid else 'main\n')
sys.addaudithook(note)
from ansible.cli.playbook import main
sys.argv = ['ansible-playbook'] + sys.argv[2:]
sys.exit(main())
'''

PLAYBOOK = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
''' + ''.join('''
    - ansible.builtin.debug:
        msg: "{{ {'a': %d} | combine({'b': 2}) | to_json }}"
''' % i for i in range(4))


def ldconfig_runs(tmp_path, **env_changes):
    """Who ran `ldconfig` in a run of four tasks: 'main' or 'worker' each time."""
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    notes = tmp_path / 'ldconfig'
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    env.pop('ANSIBLE_CALLBACKS_ENABLED', None)
    env.update(env_changes)
    done = subprocess.run([sys.executable, '-c', WRAPPER, str(notes), '-i', 'localhost,',
                           str(tmp_path / 'play.yml')], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count('"msg": "') == 4
    return notes.read_text().split() if notes.exists() else []


@pytest.mark.parametrize('enabled', [None, 'podnet_timing'])
def test_workers_inherit_the_filters_loaded_once(tmp_path, enabled):
    """Also when the user enables callbacks of their own (the scale bench
    enables podnet_timing): podnet_warm needs no enabling."""
    changes = {'ANSIBLE_CALLBACKS_ENABLED': enabled} if enabled else {}
    assert set(ldconfig_runs(tmp_path, **changes)) == {'main'}


def test_without_it_every_worker_loads_them(tmp_path):
    """The control: what the check above would see without podnet_warm."""
    (tmp_path / 'no-callbacks').mkdir()
    assert ldconfig_runs(tmp_path, ANSIBLE_CALLBACK_PLUGINS=str(tmp_path / 'no-callbacks')).count('worker') == 4
