#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: draw the cluster from the nodes' live facts with Graphviz."""

DOCUMENTATION = r'''
---
module: podnet_graph
short_description: Draw the cluster (and a path from explain) as SVG and PNG with Graphviz
description:
  - Runs on the controller (playbooks/graph.yml). Draws from the facts the nodes report
    (podnet_facts), not from the plan, so the picture shows drift as it is.
  - Racks with their switch, the fabric router and the outside host; each node with its
    underlay address, pod CIDR, cni0 and its flannel.1 VTEP with dashed tunnels to the
    peers its FDB holds; each pod with its IP, veth and containers.
  - With O(path), the hops of playbooks/explain.yml (its C(explain_output) JSON), the path
    is drawn over the cluster in red.
  - Writes C(<output>.dot) and, through Graphviz C(dot), one file per format.
options:
  nodes:
    description: Each node's C(ansible_facts.podnet), by node name.
    type: dict
    required: true
  racks:
    description: Each node's rack (C(podnet_rack)), by node name.
    type: dict
    default: {}
  lab:
    description: The lab's networks (C(podnet_lab)) to label the racks and draw the outside host.
    type: dict
  path:
    description: The C(hops) of an explain result, drawn in colour.
    type: list
    elements: dict
  title:
    description: The picture's title.
    type: str
    default: podnet cluster
  output:
    description: Path of the files without extension (C(.dot), C(.svg), C(.png) are added).
    type: path
    required: true
  formats:
    description: What C(dot) renders besides the DOT text.
    type: list
    elements: str
    choices: [svg, png]
    default: [svg, png]
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
requirements: [graphviz (the dot command)]
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Draw the cluster.
  podnet_graph:
    nodes: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars,
              ['ansible_facts', 'podnet']))) }}"
    output: /tmp/cluster
  run_once: true
  delegate_to: localhost
'''

RETURN = r'''
files:
  description: The files written (or due, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/tmp/cluster.dot, /tmp/cluster.svg, /tmp/cluster.png]
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.statefile import read_text, write_atomic
from ansible.module_utils.podnet.explain import graph


def main():
    module = AnsibleModule(
        argument_spec=dict(nodes=dict(type='dict', required=True), racks=dict(type='dict', default={}),
                           lab=dict(type='dict'), path=dict(type='list', elements='dict'),
                           title=dict(type='str', default='podnet cluster'),
                           output=dict(type='path', required=True),
                           formats=dict(type='list', elements='str', choices=['svg', 'png'],
                                        default=['svg', 'png'])),
        supports_check_mode=True)
    p = module.params
    text = graph.dot(p['nodes'], p['racks'], p['lab'], p['path'], p['title'])
    source = p['output'] + '.dot'
    files = [source] + ['%s.%s' % (p['output'], f) for f in p['formats']]
    changed = read_text(source) != text or not all(os.path.exists(f) for f in files)
    if changed and not module.check_mode:
        dot = module.get_bin_path('dot', required=True)
        write_atomic(source, text)
        for fmt, target in zip(p['formats'], files[1:]):
            rc, _, err = module.run_command([dot, '-T' + fmt, '-o', target, source])
            if rc != 0:
                module.fail_json(msg='dot -T%s %s: %s' % (fmt, source, err.strip()))
    module.exit_json(changed=changed, files=files, dot=text)


if __name__ == '__main__':
    main()
