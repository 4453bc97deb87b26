"""Not a rule: podnet's module_utils, importable in ansible-lint's process.

ansible-lint's args rule checks a task's arguments by importing the module
and running its argument spec in-process, where `ansible.module_utils` is
only the installed package: importing `ansible.module_utils.podnet` fails,
and the rule skips every podnet task with a warning. Ansible itself ships
module_utils inside each module's payload, so nothing else needs this.
ansible-lint imports every file of its rules directories before it checks
anything: the one hook it offers. The paths are ansible.cfg's module_utils,
as the action plugins (plugins/action) extend them.
"""
import ansible.module_utils
from ansible import constants as C

ansible.module_utils.__path__.extend(p for p in C.DEFAULT_MODULE_UTILS_PATH
                                     if p not in ansible.module_utils.__path__)
