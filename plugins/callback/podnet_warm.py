# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loads Ansible's Jinja filters and tests once, in the controller's main
process, when a play starts: every worker Ansible forks for a task on a
host then inherits them, where each worker otherwise loaded them itself
(about 15 ms of CPU each, most of it the core filters' crypt support
running `ldconfig -p`), 145 times in a converge of 20 nodes.

A role or collection that adds plugin folders later clears Ansible's cache
of them, and the workers load them as before: this only ever saves work.
Needs no enabling: Ansible loads it from callback_plugins (ansible.cfg).
"""

DOCUMENTATION = '''
name: podnet_warm
type: aggregate
short_description: Load Jinja filters and tests once before Ansible forks its workers.
description:
  - When a play starts, loads Ansible's Jinja filter and test plugins in the
    controller's main process, so that each worker forked for a task on a host
    inherits them instead of loading them itself.
  - Prints nothing. Loaded without enabling, from the project's callback_plugins.
'''

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'podnet_warm'
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_play_start(self, play):
        for loader in (filter_loader, test_loader):
            for _ in loader.all():
                pass
