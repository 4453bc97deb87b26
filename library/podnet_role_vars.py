#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: check several roles' variables on every host of a play at once."""

DOCUMENTATION = r'''
---
module: podnet_role_vars
short_description: Check the variables of several roles on every host of the play, in one task
description:
  - Checks each host's variables against the C(meta/argument_specs.yml) of every role in
    O(roles), for the entry point O(entry_point), as Ansible checks a role's variables when the
    role starts. It runs once, in Ansible's own process on the controller (an action plugin),
    where Ansible's own check is one task per role and host.
  - Only the variables a host sets are checked (inventory, host and group variables, extra
    variables, facts); the roles' defaults are theirs.
  - Fails listing every host, role and variable that does not fit, before anything changes.
  - C(playbooks/site.yml) runs it for its roles, and imports them with C(rolespec_validate=false).
    A role used on its own still checks its variables as usual.
options:
  roles:
    description: The roles whose argument specs to check against, by name, looked up in the
      playbook's C(roles) folder and then the roles path.
    type: list
    elements: str
    required: true
  entry_point:
    description: The entry point of each role's argument spec.
    type: str
    default: main
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Check every role's variables on every node at once.
  podnet_role_vars:
    roles: [node, cluster, network, backend, pods, policy]
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
checked:
  description: The roles checked.
  returned: success
  type: list
  elements: str
  sample: [backend, cluster, network, node, pods, policy]
argument_errors:
  description: 'What does not fit, each as C(<host>: role <role>: <message>).'
  returned: failure
  type: list
  elements: str
  sample: ["node2: role backend: value of podnet_backend must be one of: vxlan, host-gw, got: gre"]
'''
