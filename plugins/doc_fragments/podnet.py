# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation shared by podnet's node modules: the state they reconcile
and the node state directory that holds their lock (the argument spec is
reconcile.NODE_STATE_OPTIONS)."""


class ModuleDocFragment:
    DOCUMENTATION = r'''
options:
  state:
    description: C(present) makes the node match the options; C(absent) removes what the module made.
    type: str
    choices: [present, absent]
    default: present
  state_dir:
    description: The node's state directory, where the node lock and the module's records are kept.
    type: path
    default: /var/lib/podnet
attributes:
  check_mode:
    description: Check mode reports the plan the change would apply, from the same read of the node.
    support: full
  diff_mode:
    description: The diff shows the node before and after, then one line per planned action.
    support: full
'''

    # What check and diff mode mean for the other modules (each states its
    # support, and details where it differs).
    ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Can run in check mode and report what it would change without changing it.
  diff_mode:
    description: Shows what it changed, or in check mode what it would change, as a diff.
'''
