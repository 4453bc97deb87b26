"""The cluster-wide run lock: finding the ansible-playbook run a module
belongs to, and taking, waiting for and taking over the lock file."""
import os

import pytest
from ansible.module_utils.podnet.kernel import linux
from ansible.module_utils.podnet.lab import runlock
from ansible.module_utils.podnet.lab.runlock import Holder, RunLockError

PLAYBOOK = ['/venv/bin/python3', '/venv/bin/ansible-playbook', '-i', 'inv', 'site.yml']
# pid: (parent, start, argv) -- the main run 100, its worker fork 200, the
# shell 300 and the module 400 it started.
PROCESSES = {1: (0, 1, ['init']), 50: (1, 10, ['bash']), 100: (50, 500, PLAYBOOK),
             200: (100, 900, PLAYBOOK), 300: (200, 950, ['/bin/sh', '-c', 'python3']),
             400: (300, 960, ['python3'])}


def stat(pid):
    return PROCESSES[pid][:2] if pid in PROCESSES else None


def cmdline(pid):
    return PROCESSES[pid][2] if pid in PROCESSES else []


def test_the_holder_is_the_outermost_ansible_playbook_not_its_worker():
    assert runlock.playbook_process(400, cmdline, stat) == Holder(100, 500)


def test_no_holder_outside_an_ansible_playbook_run():
    assert runlock.playbook_process(50, cmdline, stat) is None


def test_ansible_playbook_is_matched_on_the_program_not_an_argument():
    assert runlock.runs_playbook(['ansible-playbook', 'site.yml'])
    assert not runlock.runs_playbook(['vim', 'x', 'y', 'notes-on-ansible-playbook'])
    assert not runlock.runs_playbook(['grep', 'ansible-playbook-x'])


def test_a_holder_is_alive_only_with_the_same_start_time_and_program():
    assert runlock.alive(Holder(100, 500), cmdline, stat)
    assert not runlock.alive(Holder(100, 499), cmdline, stat)  # pid reused
    assert not runlock.alive(Holder(300, 950), cmdline, stat)  # not ansible-playbook
    assert not runlock.alive(Holder(999, 1), cmdline, stat)    # gone


def test_stat_of_this_process_has_its_parent():
    parent, start = linux.read_stat(os.getpid())
    assert parent == os.getppid() and start > 0


def test_a_free_lock_is_taken_and_records_pid_and_start(tmp_path):
    path = str(tmp_path / 'run-lab.lock')
    assert runlock.take(path, Holder(100, 500), 5) == (pytest.approx(0, abs=1), None)
    assert open(path).read() == '100 500\n'


def test_the_same_run_takes_it_again(tmp_path):
    path = str(tmp_path / 'run-lab.lock')
    runlock.take(path, Holder(100, 500), 5)
    assert runlock.try_take(path, Holder(100, 500), lambda h: True) is None


def test_a_dead_holder_is_taken_over(tmp_path):
    path = tmp_path / 'run-lab.lock'
    path.write_text('100 500\n')
    assert runlock.try_take(str(path), Holder(7, 8), lambda h: False) is None
    assert path.read_text() == '7 8\n'


def test_garbage_in_the_lock_file_is_taken_over(tmp_path):
    path = tmp_path / 'run-lab.lock'
    path.write_text('half a wri')
    assert runlock.try_take(str(path), Holder(7, 8), lambda h: True) is None


def test_a_live_holder_makes_the_second_run_wait_then_take_it(tmp_path):
    path = tmp_path / 'run-lab.lock'
    path.write_text('100 500\n')
    clock, lives = [0.0], [True, True, True, False]

    def sleep(seconds):
        clock[0] += seconds
    waited, other = runlock.take(str(path), Holder(7, 8), 600, lambda h: lives.pop(0), sleep,
                                 lambda: clock[0])
    assert (waited, other) == (3.0, Holder(100, 500))
    assert path.read_text() == '7 8\n'


def test_a_live_holder_past_the_timeout_fails_naming_its_pid(tmp_path):
    path = tmp_path / 'run-lab.lock'
    path.write_text('100 500\n')
    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds
    with pytest.raises(RunLockError) as info:
        runlock.take(str(path), Holder(7, 8), 5, lambda h: True, sleep, lambda: clock[0])
    assert 'pid 100' in str(info.value) and 'over 5 s' in str(info.value)
    assert path.read_text() == '100 500\n'


def test_lock_files_are_named_after_the_lab():
    assert runlock.lock_path('/p/.lab/locks', 'mrack') == '/p/.lab/locks/run-mrack.lock'
    assert runlock.lock_path('/p', '../x y') == '/p/run-.._x_y.lock'
    with pytest.raises(runlock.PodnetError):
        runlock.lock_path('/p', '..')
