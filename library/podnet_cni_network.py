#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: a node's CNI network for runtimes (podman), as flannel's install-cni."""

DOCUMENTATION = r'''
---
module: podnet_cni_network
short_description: Install a node's CNI network for runtimes such as podman
description:
  - Writes the network configuration O(conf_dir)/O(conflist) (C(cniVersion) 1.0.0,
    the highest podman 4.3's libcni reads) naming the plugin O(type), in the node's
    pod CIDR and with its MTU, as flannel's install-cni writes its own.
  - With O(type=podnet-cni), links O(bin_dir)C(/podnet-cni) to O(plugin_source)
    (the plugin finds podnet's code from its real path); it takes addresses from
    podnet's IPAM in O(state_dir), on C(cni0). Any other type
    (Debian's C(ptp)) gets C(host-local) on the top O(host_local_addresses)
    addresses of the pod CIDR, which podnet's IPAM does not know.
  - With O(podman_conf), writes podman's C(containers.conf) there, for its CNI
    backend on these folders, with this network as the default one.
  - O(state=absent) removes the configuration, the plugin's link, C(containers.conf)
    and C(host-local)'s addresses of the network (O(ipam_dir)/O(network)), then the
    folders that held nothing else (but mount points).
options:
  pod_cidr: {description: This node's pod CIDR; required with O(state=present)., type: str}
  mtu: {description: The pods' MTU; required with O(state=present)., type: int}
  type: {description: The plugin the network runs., type: str, default: podnet-cni}
  plugin_source:
    description: "The plugin's file on the node, which O(bin_dir) links to when O(type=podnet-cni)."
    type: path
  host_local_addresses:
    description: How many of the pod CIDR's top addresses C(host-local) hands out, for a type other than C(podnet-cni).
    type: int
    default: 16
  network: {description: The network's name (C(podman --network NAME))., type: str, default: podnet}
  conflist: {description: The configuration's file name in O(conf_dir)., type: str, default: 10-podnet.conflist}
  conf_dir: {description: The CNI configuration folder runtimes read., type: path, default: /etc/cni/net.d}
  bin_dir: {description: The CNI plugin folder the plugin goes into., type: path, default: /opt/cni/bin}
  system_bin_dirs:
    description: The distribution's CNI plugin folders, which podman searches after O(bin_dir).
    type: list
    elements: path
    default: [/usr/lib/cni]
  ipam_dir: {description: "C(host-local)'s data folder; state absent removes the network's folder there.", type: path,
             default: /var/lib/cni/networks}
  podman_conf: {description: "Where podman's C(containers.conf) goes; omitted, podman is left alone.", type: path}
  podman_cgroup_manager:
    description: "podman's cgroup manager (cgroupfs where systemd does not run, as on lab nodes)."
    type: str
    choices: [cgroupfs, systemd]
    default: cgroupfs
  podman_cgroups:
    description: Whether podman gives containers and conmon cgroups (not on lab nodes, whose cgroup v1 is partial).
    type: str
    choices: [enabled, disabled, no-conmon]
    default: enabled
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Install the node's CNI network (podnet-cni) and point podman at it.
  podnet_cni_network:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    plugin_source: /opt/podnet/roles/cni/files/podnet-cni
    podman_conf: /etc/containers/containers.conf

- name: The same network with Debian's ptp and host-local on the pod CIDR's top 16 addresses.
  podnet_cni_network:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    type: ptp

- name: Remove them (a cluster reset).
  podnet_cni_network:
    podman_conf: /etc/containers/containers.conf
    state: absent
'''

RETURN = r'''
actions:
  description: What was changed (or would be, in check mode), as verb, target and reason.
  returned: always
  type: list
  elements: list
  sample: [[write, /etc/cni/net.d/10-podnet.conflist, missing]]
conflist:
  description: The network configuration's path.
  returned: always
  type: str
  sample: /etc/cni/net.d/10-podnet.conflist
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pod_cidr=dict(type='str'), mtu=dict(type='int'), type=dict(type='str', default='podnet-cni'),
            plugin_source=dict(type='path'), host_local_addresses=dict(type='int', default=16),
            network=dict(type='str', default='podnet'), conflist=dict(type='str', default='10-podnet.conflist'),
            conf_dir=dict(type='path', default='/etc/cni/net.d'), bin_dir=dict(type='path', default='/opt/cni/bin'),
            system_bin_dirs=dict(type='list', elements='path', default=['/usr/lib/cni']),
            ipam_dir=dict(type='path', default='/var/lib/cni/networks'), podman_conf=dict(type='path'),
            podman_cgroup_manager=dict(type='str', choices=['cgroupfs', 'systemd'], default='cgroupfs'),
            podman_cgroups=dict(type='str', choices=['enabled', 'disabled', 'no-conmon'], default='enabled'),
            **NODE_STATE_OPTIONS),
        required_if=[('state', 'present', ('pod_cidr', 'mtu'))],
        supports_check_mode=True)
    run_module(module, network_of)


def network_of(module):
    from ansible.module_utils.podnet.node.cninet import CniNetwork
    return CniNetwork(module.params)


if __name__ == '__main__':
    main()
