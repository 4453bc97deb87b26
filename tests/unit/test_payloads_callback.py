"""The podnet_payloads callback: a module's AnsiballZ payload, built by one
playbook run, is used by the next run of the same code instead of being
built again, and never once the code has changed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# ansible-playbook with an audit hook that every forked worker inherits: it
# notes each time a worker opens the module_utils file, which only building
# the payload does (Ansible's finder reads every module_utils it imports; the
# callback reads it too, for its key, but in the main process).
WRAPPER = r'''
import os, sys
notes, watched, main_pid = sys.argv[1], sys.argv[2], os.getpid()
def note(event, args):
    if event == 'open' and str(args[0]) == watched and os.getpid() != main_pid:
        with open(notes, 'a') as f:
            f.write('built\n')
sys.addaudithook(note)
from ansible.cli.playbook import main
sys.argv = ['ansible-playbook'] + sys.argv[3:]
sys.exit(main())
'''

MODULE = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.payloadtest import answer


def main():
    AnsibleModule(argument_spec={}).exit_json(changed=False, answer=answer())


main()
'''

PLAYBOOK = '''
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - payload_probe:
      register: probed
    - ansible.builtin.ping:  # not from the configured library folder: not kept
    - ansible.builtin.assert: {that: probed.answer == %r}
'''


@pytest.fixture
def project(tmp_path):
    """A project of one module and one module_utils file, with a config that
    loads podnet's callbacks and keeps Ansible's temporary files in tmp_path."""
    (tmp_path / 'library').mkdir()
    (tmp_path / 'library' / 'payload_probe.py').write_text(MODULE)
    (tmp_path / 'module_utils').mkdir()
    (tmp_path / 'ansible.cfg').write_text(
        '[defaults]\nlibrary = library\nmodule_utils = module_utils\ncallback_plugins = %s\n'
        'local_tmp = %s\n' % (ROOT / 'plugins' / 'callback', tmp_path / 'ansible-tmp'))
    return tmp_path


def run(project, answer, **env_changes):
    """Run the playbook with module_utils answering `answer`: whether a
    worker built the payload."""
    utils = project / 'module_utils' / 'payloadtest.py'
    if not utils.exists() or utils.read_text() != 'def answer():\n    return %r\n' % answer:
        utils.write_text('def answer():\n    return %r\n' % answer)
    (project / 'play.yml').write_text(PLAYBOOK % answer)
    notes = project / 'built'
    notes.unlink(missing_ok=True)
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='0',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    env.pop('PODNET_PAYLOADS', None)
    env.update(env_changes)
    done = subprocess.run([sys.executable, '-c', WRAPPER, str(notes), str(utils), '-i', 'localhost,',
                           str(project / 'play.yml')], capture_output=True, text=True, env=env, cwd=project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return notes.exists()


def test_the_next_run_of_the_same_code_does_not_build_the_payload(project):
    assert run(project, 'one') is True
    assert run(project, 'one') is False
    store = project / 'ansible-tmp' / 'podnet-payloads'
    assert oct(store.stat().st_mode & 0o777) == '0o700'
    assert [p.name for key in store.iterdir() for p in key.iterdir()] == [
        'ansible.legacy.payload_probe-ZIP_DEFLATED-none']


def test_changed_code_gets_a_new_payload(project):
    """The playbook asserts the module answers from the changed file."""
    assert run(project, 'one') is True
    assert run(project, 'two') is True
    assert run(project, 'two') is False
    assert len(list((project / 'ansible-tmp' / 'podnet-payloads').iterdir())) == 2


def test_podnet_payloads_0_turns_it_off(project):
    assert run(project, 'one', PODNET_PAYLOADS='0') is True
    assert run(project, 'one', PODNET_PAYLOADS='0') is True
    assert not (project / 'ansible-tmp' / 'podnet-payloads').exists()


def test_a_store_others_can_write_is_not_used(project):
    """Ansible unpickles a payload: one planted by another user would run."""
    assert run(project, 'one') is True
    (project / 'ansible-tmp' / 'podnet-payloads').chmod(0o777)
    assert run(project, 'one') is True
