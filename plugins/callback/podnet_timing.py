# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a playbook's time goes: each task's wall time, from its start to
the last host's result, and the time before the first task (Ansible start,
inventory, playbook parsing), printed after the recap.

    ANSIBLE_CALLBACKS_ENABLED=podnet_timing ansible-playbook ...
"""

DOCUMENTATION = '''
name: podnet_timing
type: aggregate
short_description: Wall time of each task, slowest first, after the recap.
description:
  - Prints each task's wall time (its start to the last host's result) and
    the time Ansible took before the first task.
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=podnet_timing).
requirements: [enable in configuration]
'''

import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'podnet_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.loaded = time.monotonic()
        self.first_task = None
        self.tasks = []  # [name, start, end]

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.monotonic()
        self.first_task = self.first_task or now
        self.tasks.append([task.get_name(), now, now])

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _result(self, result, **_):
        if self.tasks:
            self.tasks[-1][2] = time.monotonic()

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _result
    v2_runner_on_unreachable = _result

    def v2_playbook_on_stats(self, stats):
        end = time.monotonic()
        lines = ['%7.2f s  before the first task' % ((self.first_task or end) - self.loaded)]
        for name, start, finish in sorted(self.tasks, key=lambda t: t[1] - t[2])[:15]:
            lines.append('%7.2f s  %s' % (finish - start, name))
        lines.append('%7.2f s  in all (from this callback loading)' % (end - self.loaded))
        self._display.display('\n'.join(['TIMING (slowest tasks first)'] + lines))
