#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: plan the cluster (pod CIDRs, placement, commands) on the controller."""

DOCUMENTATION = r'''
---
module: podnet_cluster
short_description: Plan the pod network of the whole cluster before any node changes
description:
  - Runs once, on the controller. Loads the Kubernetes manifests (Namespace, Pod,
    NetworkPolicy; files or directories, multi-document), validates them as the
    API server would, places pods (C(spec.nodeName) pins, a deterministic
    scheduler spreads the rest), allocates each node's pod CIDR from the cluster
    CIDR (a node keeps the one it has), resolves every container's command line
    from the image catalog, and checks the backend fits the underlay.
  - Any refusal names the object and field, and comes before any change.
  - Changes nothing itself; returns the plan the node modules apply.
options:
  manifests:
    description:
      - Manifest files or directories; relative paths are tried as given, then under C(root).
      - A file or directory that holds no object is refused, since planning from it would stop
        every pod; an empty list means no workloads, on purpose.
      - A file may hold at most 4 MiB, and one million YAML nodes once aliases are expanded.
    type: list
    elements: path
    required: true
  root: {description: The project folder., type: path, required: true}
  nodes:
    description:
      - Every node by its inventory name, in inventory order, with the facts C(podnet_node) gathered on it
        (C(underlay_ip), C(underlay_prefixlen), C(underlay_ifname), C(underlay_mtu), the C(pod_cidr) it has or null).
      - Fresh nodes get pod CIDRs in this order; a node whose variable C(podnet_pod_cidr) is set gets that one.
    type: dict
    required: true
  cluster_cidr: {description: The cluster's pod network., type: str, default: 10.42.0.0/16}
  backend: {description: The backend., type: str, choices: [vxlan, host-gw], default: vxlan}
  images: {description: 'The image catalog: image name to C(entrypoint) and C(cmd).', type: dict, required: true}
  cluster_dns:
    description:
      - The cluster DNS manifest (the cluster role's C(files/cluster-dns.yaml)), run as the manifests are;
        its pods alone see the zone each node keeps, read-only. ClusterFirst pods resolve through its
        Service, 10.43.0.10.
      - Not given, the cluster has no DNS and ClusterFirst pods get their node's resolv.conf.
    type: path
  unknown_images:
    description:
      - What a container whose image the catalog does not have and which gives no C(command) runs.
      - C(stand-in) runs the catalog's C(registry.k8s.io/e2e-test-images/agnhost) in its C(stand-in) mode
        instead, which answers as agnhost netexec does (HTTP C(/hostname), C(/clientip), C(/echo); UDP
        C(hostname), C(echo), C(clientip)) on every TCP and UDP C(containerPort) the container declares
        (SCTP ports are skipped and noted, for the nodes have no SCTP sockets), and pauses when it declares none.
        The container's C(args) are not run, its C(env) is kept; an init container's stand-in completes at once.
        The task prints the images it stood in for on one line.
      - C(refuse) refuses such a container, naming it.
      - A container that gives a C(command) runs it, whatever its image.
    type: str
    choices: [stand-in, refuse]
    default: stand-in
attributes:
  check_mode: {support: full}
  diff_mode: {support: none}
extends_documentation_fragment: [podnet.attributes]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Plan the cluster.
  podnet_cluster:
    manifests: [manifests/seed]
    root: "{{ podnet_root }}"
    nodes: >-
      {{ dict(ansible_play_hosts
              | zip(ansible_play_hosts | map('extract', hostvars, ['ansible_facts', 'podnet_node']))) }}
    images: "{{ podnet_images }}"
  run_once: true
  delegate_to: localhost
  register: podnet_plan
'''

RETURN = r'''
backend:
  description: The backend the plan connects the nodes with.
  returned: success
  type: str
  sample: vxlan
nodes:
  description:
    - By node name, its pod CIDR, MTU, VTEP MAC, peers and the pods placed on it;
      below, what C(nodes[<name>].pods_json) holds.
  returned: success
  type: dict
  contains:
    pods_json:
      description:
        - The node's pods, sorted by namespace/name, as podnet_pods receives them, as one JSON
          text (C(from_json) reads it); below, what each pod holds.
        - Text, not a list, because Ansible walks every value a task registers and every argument
          it templates, for each node; at 1,000 pods a structure cost it about 50 ms a node.
      returned: success
      type: str
      contains:
        namespace: {description: The pod's namespace., type: str, sample: default}
        name: {description: The pod's name., type: str, sample: multi-container-pod}
        hostname:
          description: The hostname of the pod's UTS namespace, C(spec.hostname) or the name, cut to 63
            characters without a trailing C(-) or C(.), as the kubelet does.
          type: str
          sample: multi-container-pod
        labels: {description: The pod's labels., type: dict}
        restart_policy: {description: 'Always, OnFailure or Never.', type: str}
        containers:
          description: The containers, in manifest order.
          type: list
          elements: dict
          contains:
            name: {description: The container's name., type: str}
            argv: {description: The resolved command line., type: list, elements: str}
            env: {description: 'Environment variables, expanded.', type: dict}
            working_dir: {description: 'The working directory, or null.', type: str}
            ports: {description: 'Container ports: name, containerPort, protocol.', type: list, elements: dict}
            stand_in: {description: 'True, and only there, when it runs the stand-in (O(unknown_images)).', type: bool}
            capabilities:
              description: The Linux capabilities the container keeps, sorted, without C(CAP_);
                the container runtime's default set after C(securityContext.capabilities) drop and add,
                or every capability when C(securityContext.privileged).
              type: list
              elements: str
              sample: [AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE,
                       NET_RAW, SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT]
        init_containers:
          description:
            - The pod's C(spec.initContainers), in the order they run, as C(containers) gives a container
              (they have no probes); absent when it has none. A stand-in for one completes at once (exit 0),
              which RV(notes) says.
          type: list
          elements: dict
workloads:
  description: The pods each workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) keeps, by C(Kind ns/name).
  returned: success
  type: dict
  sample: {Deployment default/web: [default/web-7c5ddbdf54-2xbqz, default/web-7c5ddbdf54-kq8vt]}
ignored:
  description:
    - The objects of the manifests podnet does not model (ConfigMaps, Services, ServiceAccounts...), as C(Kind ns/name);
      the task also prints them on one line.
  returned: success
  type: list
  elements: str
  sample: [ConfigMap default/settings, ServiceAccount default/web]
notes:
  description:
    - By pod (C(Pod ns/name)) or by the workload that made it (C(Kind ns/name)), what its manifest asks that podnet
      accepts but does not set up and whose absence may change how it behaves (volumes, environment from
      elsewhere); the task also prints them.
  returned: success
  type: dict
  sample: {Deployment default/web: ["container web: volume data (persistentVolumeClaim) is not mounted at /data"]}
stand_ins:
  description:
    - By image, as the manifests write it, the containers (C(ns/pod/container)) that run the stand-in
      for it (O(unknown_images)); the task also prints them on one line.
  returned: success
  type: dict
  sample: {myorg/checkout:1.4: [default/checkout-5d8f7c9b4-x2k9q/checkout, default/checkout-5d8f7c9b4-q7w4z/c]}
placement:
  description: Node of every pod, by namespace/name.
  returned: success
  type: dict
  sample: {default/multi-container-pod: node2}
namespaces:
  description: Labels of every namespace.
  returned: success
  type: dict
policy_cluster:
  description:
    - What every node's policy table is compiled from, as one JSON text, as the policy role passes
      it to podnet_policy on every node (its C(cluster) option); C(from_json) reads it.
    - C(policies), the NetworkPolicy objects as given; C(pods), every pod of the cluster sorted by
      namespace/name with what podnet_policy and podnet_services need of it (C(namespace), C(name),
      C(node), C(labels), C(hostname), C(subdomain) and C(ports), its containers' ports);
      C(namespaces), as above.
  returned: success
  type: str
services_json:
  description:
    - Every Service of the cluster, as one JSON text, as the services role passes it to podnet_services
      on every node. Each has C(namespace), C(name), C(type), C(cluster_ip) (allocated from the service
      CIDR 10.43.0.0/16 unless the manifest sets it; null for a headless Service), C(selector),
      C(ports) (C(name), C(protocol), C(port), C(target_port), C(node_port)), C(affinity_timeout),
      C(external_local), C(internal_local), C(publish_not_ready) and C(external_name).
  returned: success
  type: str
'''

# Ansible's own process does the work, through the action plugin of the same
# name (plugins/action/podnet_cluster.py): the plan is made on the
# controller and touches no node. This file holds
# its documentation, as ansible-core's own action modules do.
