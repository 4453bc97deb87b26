# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""podnet_role_vars runs in Ansible's own process on the controller, once
per play: it checks the variables of several roles on every host of the
play against the roles' meta/argument_specs.yml, as Ansible checks a role's
variables when the role starts, but in one task instead of one per role
and host (each costs a worker fork per host: 0.4 s a role at 20 nodes). Its
documentation is library/podnet_role_vars.py."""
import os

import ansible.module_utils
import yaml
from ansible import constants as C
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

# podnet's module_utils (names), importable here as the modules import them.
ansible.module_utils.__path__.extend(p for p in C.DEFAULT_MODULE_UTILS_PATH
                                     if p not in ansible.module_utils.__path__)

from ansible.module_utils.podnet.core import names  # noqa: E402  (once the path above has it)

# The roles that come with this plugin: the tree's, or the collection's,
# which a collection's playbook finds first by their short names.
OWN_ROLES = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'roles'))
ARGUMENT_SPEC = dict(roles=dict(type='list', elements='str', required=True),
                     entry_point=dict(type='str', default='main'))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _, p = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        folders = [OWN_ROLES, os.path.join(self._loader.get_basedir(), 'roles')] + list(C.DEFAULT_ROLES_PATH)
        try:
            specs = {role: role_options(role, p['entry_point'], folders) for role in p['roles']}
        except LookupError as exc:
            return dict(result, failed=True, msg=str(exc))
        hostvars = task_vars['hostvars']
        errors = [bad_name(host) for host in task_vars['ansible_play_hosts'] if bad_name(host)]
        errors += [error for host in task_vars['ansible_play_hosts']
                   for role, options in specs.items()
                   for error in check(host, role, options, hostvars[host])]
        if errors:
            return dict(result, failed=True, argument_errors=errors,
                        msg='Names and variables that do not fit the roles\' argument specs:\n'
                        + '\n'.join(errors))
        return dict(result, changed=False, checked=sorted(specs))


def bad_name(host):
    """Why an inventory name cannot name a node, or None: the lab's rule
    (names.HOSTNAME), checked here for every playbook that changes nodes."""
    if names.HOSTNAME.match(host):
        return None
    return '%s: inventory name: %s' % (host, names.NOT_A_HOSTNAME)


def role_options(role, entry_point, folders):
    """The options of a role's entry point, from the first roles folder that has the role."""
    for folder in folders:
        path = os.path.join(folder, role, 'meta', 'argument_specs.yml')
        if os.path.isfile(path):
            with open(path) as f:
                specs = yaml.safe_load(f)['argument_specs']
            if entry_point not in specs:
                raise LookupError('role %s: no entry point %r in %s' % (role, entry_point, path))
            return specs[entry_point].get('options') or {}
        if os.path.isdir(os.path.join(folder, role)):
            return {}  # a role without an argument spec checks nothing
    raise LookupError('role %s: not found in %s' % (role, ', '.join(folders)))


def check(host, role, options, variables):
    """'host: role role: message' for each of the host's variables that
    does not fit the role's options (those it does not set are not checked)."""
    given, errors = {}, []
    for name in options:
        try:
            if name in variables:
                given[name] = variables[name]
        except Exception as exc:  # noqa: BLE001  (a value that does not template, reported as such)
            errors.append('%s: role %s: %s: %s' % (host, role, name, exc))
    found = ArgumentSpecValidator(options).validate(given, validate_role_argument_spec=True)
    return errors + ['%s: role %s: %s' % (host, role, message) for message in found.error_messages]
