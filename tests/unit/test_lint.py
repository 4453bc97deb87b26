"""What make lint's ansible-lint relies on (.ansible-lint): its args rule
really checks a podnet module's arguments, and the podnet_ prefix, not the
role's own name, holds every role variable."""
import subprocess
import sys
from pathlib import Path

import yaml
from podnet_testlib import ROOT, playbook_env


def test_ansible_lint_refuses_an_argument_a_podnet_module_does_not_take(tmp_path):
    """Without .ansible-lint-rules/ the rule cannot import the module and
    lets the task pass with a warning."""
    tasks = tmp_path / 'tasks' / 'main.yml'
    tasks.parent.mkdir()
    tasks.write_text('---\n- name: Remove the pod network.\n  podnet_network:\n'
                     '    state: absent\n    no_such_argument: 1\n')
    done = subprocess.run([str(Path(sys.executable).parent / 'ansible-lint'), '--nocolor', '-f', 'pep8',
                           '-c', str(ROOT / '.ansible-lint'), str(tasks)],
                          capture_output=True, text=True, cwd=ROOT, env=playbook_env())
    assert done.returncode != 0
    assert 'args[module]' in done.stdout and 'no_such_argument' in done.stdout, done.stdout + done.stderr


def role_variables():
    """(role, name) of each variable a role documents, defaults, registers or sets."""
    for role in sorted(p for p in (ROOT / 'roles').iterdir() if p.is_dir()):
        specs = role / 'meta' / 'argument_specs.yml'
        if specs.exists():
            for spec in yaml.safe_load(specs.read_text())['argument_specs'].values():
                yield from ((role.name, name) for name in spec.get('options', {}))
        defaults = role / 'defaults' / 'main.yml'
        if defaults.exists():
            yield from ((role.name, name) for name in yaml.safe_load(defaults.read_text()) or {})
        for tasks in sorted((role / 'tasks').glob('*.yml')):
            for task in yaml.safe_load(tasks.read_text()) or []:
                if 'register' in task:
                    yield role.name, task['register']
                yield from ((role.name, name) for name in task.get('ansible.builtin.set_fact', {}))


def test_every_role_variable_carries_the_podnet_prefix():
    """Ansible's own variables (ansible_python_interpreter) aside."""
    names = list(role_variables())
    assert len({role for role, _ in names}) >= 7
    assert [(role, name) for role, name in names
            if not name.startswith(('podnet_', 'ansible_'))] == []
