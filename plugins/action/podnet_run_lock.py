# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet_run_lock runs in Ansible's own process on the controller, whose
parent is the ansible-playbook run it holds the lock for; as a module it
paid for a fresh interpreter and its AnsiballZ imports on every run. Its
documentation is library/podnet_run_lock.py."""
import os

import ansible.module_utils
from ansible import constants as C
from ansible.plugins.action import ActionBase

# podnet's module_utils, importable here as the modules import them.
ansible.module_utils.__path__.extend(p for p in C.DEFAULT_MODULE_UTILS_PATH
                                     if p not in ansible.module_utils.__path__)

ARGUMENT_SPEC = dict(name=dict(type='str', required=True),
                     lock_dir=dict(type='path', required=True),
                     timeout=dict(type='int', default=600))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, p = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        # Here, not at the top: Ansible imports action plugins in its main
        # process, which every worker is forked from.
        from ansible.module_utils.podnet.lab import runlock
        from ansible.module_utils.podnet.core.errors import PodnetError
        try:
            path = runlock.lock_path(p['lock_dir'], p['name'])
            me = runlock.playbook_process(os.getpid())
            if me is None:
                raise PodnetError('podnet_run_lock', 'not called from an ansible-playbook run')
            waited, other = runlock.take(path, me, p['timeout'])
        except PodnetError as exc:
            return dict(result, failed=True, msg=str(exc), subject=exc.subject)
        return dict(result, changed=False, path=path, holder=me._asdict(), waited=round(waited, 1),
                    waited_for=other and other.pid)
