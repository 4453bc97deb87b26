"""State files: whole or not at all, private temporaries, the node lock."""
import os
import subprocess
import sys

import pytest
from ansible.module_utils.podnet.core.statefile import LockError, create_exclusive, node_lock, write_atomic


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'sub' / 'record.json'
    write_atomic(str(target), 'one')
    write_atomic(str(target), 'two')
    assert target.read_text() == 'two'
    assert os.listdir(target.parent) == ['record.json']


def test_create_exclusive_writes_once_and_never_half(tmp_path):
    target = tmp_path / '10.42.0.5'
    assert create_exclusive(str(target), 'uid-a\neth0\n')
    assert not create_exclusive(str(target), 'uid-b\neth0\n')
    assert target.read_text() == 'uid-a\neth0\n'
    assert os.listdir(tmp_path) == ['10.42.0.5']


def test_a_second_holder_of_the_node_lock_fails_naming_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', (
        'import fcntl, os, sys, time\n'
        'fd = os.open(%r, os.O_RDWR | os.O_CREAT)\n'
        'fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b"%%d\\n" %% os.getpid())\n'
        'print("held", flush=True); time.sleep(30)\n') % str(tmp_path / 'lock')],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(LockError, match='pid %d' % holder.pid):
            with node_lock(str(tmp_path), wait=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
    with node_lock(str(tmp_path), wait=0.3):  # the kernel dropped the dead holder's lock
        pass


def test_a_folder_as_deep_as_a_container_makes_it_is_removed(tmp_path):
    """Regression: a pod made a tree 25,000 folders deep in its /tmp;
    shutil.rmtree ran out of file descriptors (Python 3.13; 3.11 of
    recursion) and, told to ignore errors, left it all: the pod's folder
    outlived it and reset.yml failed on it every time."""
    import os
    from ansible.module_utils.podnet.core.statefile import remove_tree
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(2000):  # deeper than 3.11's recursion limit; 3.13's descriptors run out later
            os.mkdir('x', dir_fd=fd)
            deeper = os.open('x', os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
    finally:
        os.close(fd)
    remove_tree(str(tmp_path / 'x'))
    assert os.listdir(tmp_path) == []
    remove_tree(str(tmp_path / 'x'))  # nothing there is fine
