#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: one ansible-playbook run at a time per lab, on the controller."""

DOCUMENTATION = r'''
---
module: podnet_run_lock
short_description: Make concurrent playbook runs against one lab wait for each other
description:
  - Takes the cluster-wide run lock of a lab (or inventory) for the
    ansible-playbook run it is called from. It runs in Ansible's own process
    on the controller (an action plugin); run it once (C(run_once)) at the
    start of every play that changes the lab or the cluster.
  - The holder is the calling ansible-playbook process, found by walking up
    from Ansible's worker process in C(/proc) to the outermost one whose
    command is ansible-playbook. Its pid and start time go into the lock file
    C(<lock_dir>/run-<name>.lock).
  - The lock is held as long as that process lives. It needs no release; the
    next run takes it once the holder has finished or crashed, and a pid
    reused by another program does not count as the holder. Calling it again
    from the same run (C(playbooks/up.yml) imports lab.yml and site.yml) is a no-op.
  - While another live ansible-playbook holds it, the module waits up to
    O(timeout) seconds, then fails naming the holder's pid and command.
options:
  name:
    description: The lock's name, e.g. the lab's name (C(podnet_lab.name)) or the inventory's.
    type: str
    required: true
  lock_dir:
    description: Where lock files live on the controller (the project's C(.lab) folder).
    type: path
    required: true
  timeout:
    description: Seconds to wait for another run before failing.
    type: int
    default: 600
attributes:
  check_mode:
    support: full
    details: The lock is taken in check mode too, as the run still reads the lab.
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Wait for any other run against this lab, then hold the lab for this run.
  podnet_run_lock:
    name: "{{ podnet_lab.name }}"
    lock_dir: "{{ playbook_dir | dirname }}/.lab"
    timeout: 600
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
holder:
  description: The ansible-playbook process holding the lock now (this run).
  returned: success
  type: dict
  sample: {pid: 41234, start: 8812345}
waited:
  description: Seconds spent waiting for another run.
  returned: success
  type: float
  sample: 12.5
waited_for:
  description: The pid of the run waited for, or null.
  returned: success
  type: int
  sample: 41101
path:
  description: The lock file.
  returned: always
  type: str
  sample: /work/podnet/.lab/run-lab.lock
'''

# Ansible's own process does the work, through the action plugin of the same
# name (plugins/action/podnet_run_lock.py): the lock is held for the
# ansible-playbook process that runs it. This file holds
# its documentation, as ansible-core's own action modules do.
