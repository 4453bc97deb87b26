#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible module: reconcile every pod of one node in one call."""

DOCUMENTATION = r'''
---
module: podnet_pods
short_description: Run the pods wanted on a node, each in its own sandbox
description:
  - Reconciles the whole set of pods of the node it runs on. Per pod, as a CNI
    runtime and the bridge plugin do, a sandbox network namespace
    C(cni-<id>) (listed by C(ip netns)) held by a pause process
    (C(lsns) shows C(/pause)), a veth pair with the host side C(veth<8 hex>)
    on C(cni0) and the pod side C(eth0), an address from host-local style IPAM
    kept on the node's disk, C(lo) up and a default route via the gateway.
  - Containers are processes in PID and mount namespaces of their own that join
    the sandbox's network, IPC and UTS namespaces. Their output goes to
    C(<state_dir>/pods/<namespace>_<name>/<container>.log).
  - A pod's O(pods[].init_containers) run when its sandbox is made (a new pod, or one made again), one
    after another in the sandbox, each confined as its containers are and to completion (exit 0), before
    any of its containers starts. They do not run again while the sandbox stands, also when a container
    restarts, as with the kubelet. One that fails is tried again, after 1 s then 2 s, up to 3 times unless
    the pod's C(restart_policy) is C(Never); one still running after O(init_timeout) seconds is killed and
    not tried again. Then the module fails, naming the pod, the init container and its exit code, and the
    pod is removed with its sandbox, so that none of its containers runs. The next run tries it anew.
  - Under C(restart_policy=Never), as with the kubelet, such a pod ends C(Failed) instead and the run goes
    on. Its sandbox and address are freed, RV(failed_pods) and a warning say why, and later runs leave it
    Failed (no action, a warning each time) until its containers, init containers or restart policy
    change, or it is no longer wanted. C(<state_dir>/failed-pods/) remembers it.
  - Pods no longer wanted are removed with their sandbox, veth, address and
    processes. A pod whose pause or veth is gone is recreated; a container that
    exited is restarted; a changed MTU is applied to running pods.
  - The pause process is C(/bin/cat) started as C(/pause), blocked on a pipe it
    holds both ends of, so that it does nothing, as the real pause.
  - Each pod is checked as a CNI CHECK would check it (the pause process in its
    sandbox, C(eth0)'s address, default route, state, MTU and veth peer, the
    veth on C(cni0), the containers). A pod found broken is recreated; its
    reason is in RV(actions) and in the diff.
  - Pods are untrusted. A container sees the node's system folders and the
    paths in O(view), read-only, with its own C(/proc), C(/sys), C(/dev), a
    C(/dev/shm) of 64 MiB, and writable C(/tmp), C(/var/tmp) and C(/run) on
    the node's disk, in C(<state_dir>/pods/<namespace>_<name>/<container>/),
    which goes with the pod (and is emptied when the container restarts);
    the node's state, the lab's keys and root's home are not there. It keeps
    only the capabilities of its C(capabilities) list (the container runtime
    default set when not given), under the RuntimeDefault seccomp profile
    (Docker's default, which refuses new namespaces, mounts, module loading,
    the keyring and more) unless its C(seccomp) is C(Unconfined). A bridge-family
    nftables table C(podnet-guard) drops whatever a pod sends from another
    MAC or IPv4 address than its own, and anything but IPv4 and ARP.
  - Each pod has a cgroup, as kubelet lays them out (C(kubepods/pod<uid>) for a
    Guaranteed pod, C(kubepods/burstable/pod<uid>), C(kubepods/besteffort/pod<uid>)),
    with one cgroup per container below it and one for the pause process
    (C(_pause)); cgroup v1 and v2 controllers are both used, wherever the node
    has C(memory), C(cpu) and C(pids). The pod holds at most O(pids_limit)
    processes (zombies included); a container's memory and CPU limits are set on
    its cgroup, and their sums on the pod's when every container has one. A
    container the kernel's OOM killer ends is restarted by the restart policy;
    the action says C(OOMKilled). Removing a pod kills whatever still runs in its
    cgroups or its network namespace, then removes the cgroups.
  - O(state=absent) removes every pod the node has a record of, with its
    processes, sandbox and veth, any other C(cni-*) sandbox, the pods' records,
    logs and IPAM folders, and the C(podnet-guard) table. It needs none of
    O(pods), O(pod_cidr) and O(mtu).
  - IPAM is reconciled with the pods found running; the node is locked
    (C(<state_dir>/lock)) while a run reads and changes it, so concurrent runs
    wait for each other.
options:
  pods:
    description:
      - Every pod wanted on this node, as the cluster plan gives them; required with O(state=present).
      - A list, or the same as JSON text, which is how the pods role passes it (the plan's
        C(nodes[<node>].pods_json) says why). Either way each pod is checked against the
        suboptions below, and a fault names the pod.
    type: raw
    suboptions:
      namespace: {description: The pod's namespace., type: str, required: true}
      name: {description: The pod's name., type: str, required: true}
      hostname: {description: "Its hostname (the name cut to 63 characters when not given).", type: str}
      subdomain:
        description:
          - Its spec.subdomain; its C(/etc/hosts) then names it C(<hostname>.<subdomain>.<namespace>.svc.<domain>).
        type: str
      dns:
        description:
          - What its C(/etc/resolv.conf) is made from, as the kubelet makes it (dnsPolicy and dnsConfig); every
            container sees that file and the pod's C(/etc/hosts) read-only.
          - Not given, ClusterFirst on a cluster without DNS, which is the node's own resolv.conf.
        type: dict
        suboptions:
          policy:
            description: Its dnsPolicy.
            type: str
            choices: [ClusterFirst, ClusterFirstWithHostNet, Default, None]
            default: ClusterFirst
          nameservers: {description: dnsConfig's nameservers., type: list, elements: str, default: []}
          searches: {description: dnsConfig's search domains., type: list, elements: str, default: []}
          options:
            description: "dnsConfig's options, each [name, value or null]."
            type: list
            elements: list
            default: []
          cluster_dns: {description: The cluster DNS Service's address; none without cluster DNS., type: str}
          domain: {description: The cluster domain., type: str, default: cluster.local}
      labels: {description: Its labels., type: dict, default: {}}
      restart_policy:
        description: Whether an exited container is started again.
        type: str
        choices: [Always, OnFailure, Never]
        default: Always
      node: {description: The node it is planned on., type: str}
      owner:
        description:
          - The workload that keeps it, as C(Kind ns/name) (empty for a Pod of its own). When a workload's pods
            are replaced (a rollout), its new pods on this node are started before its old ones are removed.
        type: str
        default: ''
      qos:
        description: Its QoS class, which places its cgroup, as kubelet does.
        type: str
        choices: [Guaranteed, Burstable, BestEffort]
        default: BestEffort
      containers:
        description: Its containers, each with its resolved command line.
        type: list
        elements: dict
        required: true
        suboptions: &container
          name: {description: The container's name., type: str, required: true}
          argv: {description: The command line it runs; not empty., type: list, elements: str, required: true}
          env: {description: Its environment., type: dict, default: {}}
          working_dir: {description: Its working folder (C(/) when not given)., type: str}
          ports: {description: 'Its container ports, as the plan gives them.', type: list, elements: raw, default: []}
          image: {description: The image it was planned from., type: str}
          capabilities:
            description: Capability names it keeps (the container runtime default set when not given).
            type: list
            elements: str
          resources:
            description:
              - Its limits and requests, as the cluster plan gives them (bytes and millicores; absent or null for none).
              - Keys C(memory_limit), C(cpu_limit), C(memory_request), C(cpu_request).
            type: dict
            default: {}
          seccomp:
            description: Its seccomp profile.
            type: str
            choices: [RuntimeDefault, Unconfined]
            default: RuntimeDefault
          user:
            description:
              - The user and groups its process runs as (root when not given); a user other than root keeps no
                capability across exec, as with containerd.
            type: dict
            suboptions:
              uid: {description: Its user ID., type: int, default: 0}
              gid: {description: Its group ID., type: int, default: 0}
              groups: {description: Its supplementary group IDs., type: list, elements: int, default: []}
          no_new_privs:
            description: Set no_new_privs, as C(allowPrivilegeEscalation=false) asks; setuid programs then gain nothing.
            type: bool
            default: false
          mounts:
            description:
              - Folders of the node's state directory the container sees read-only, each at its C(target).
                Only the plan's own system pods have any (the cluster DNS pod sees the zone in C(dns)); a
                user's manifest never gives one.
            type: list
            elements: dict
            default: []
            suboptions:
              source:
                description: "A folder of O(state_dir), relative to it (made if missing)."
                type: str
                required: true
              target: {description: Where the container sees it; an absolute path., type: str, required: true}
          stand_in:
            description:
              - Whether it runs the stand-in for an image podnet cannot run (the cluster plan's C(stand_ins));
                a probe the stand-in cannot answer then counts as passing, and the run says so.
            type: bool
            default: false
          probes:
            description:
              - Its C(liveness), C(readiness) and C(startup) probes as the cluster plan gives them (C(handler) httpGet,
                tcpSocket, exec or grpc; C(port), C(path), C(scheme), C(headers), C(command) or C(service);
                C(initial_delay), C(timeout), C(period), C(success_threshold), C(failure_threshold); C(skip), why it
                counts as passing untried).
              - Each probe of a running pod is tried once per run, from the node. httpGet and tcpSocket connect to
                the pod's IP; grpc calls C(grpc.health.v1.Health/Check) for C(service) there, over cleartext HTTP/2
                as the kubelet does, and passes only on C(SERVING) (another status, a grpc-status error such as
                UNIMPLEMENTED, a refused connection or C(timeout) fail it). exec runs the command inside the
                container's namespaces and cgroups, with its
                capabilities, seccomp profile, no_new_privs and user, never with more. A liveness probe is tried up
                to C(failure_threshold) times in a row before it fails; C(period) and C(success_threshold) have no
                other part, since there is one try per run.
              - A pod whose readiness (or startup) probe fails, or whose container exited, is in RV(unready); a
                failing liveness probe restarts the container if C(restart_policy) allows, saying so in RV(actions).
            type: dict
            default: {}
      init_containers:
        description:
          - Its init containers, in the order they run, each with the suboptions of C(containers) but
            C(probes), which they never have (the API server forbids them), and C(ports), which nothing
            reaches while they run.
          - They are part of the pod's spec, whose change makes the pod again (and so runs them again).
          - Their C(<name>.log) is beside the containers' logs; the pod's record keeps each one's exit code and
            tries.
        type: list
        elements: dict
        default: []
        suboptions: *container
  init_timeout:
    description:
      - Seconds an init container may run before it is killed and the run fails, so that one that hangs
        cannot hold the node's converge (and its lock) for ever. Kubernetes has no such limit of its own.
    type: int
    default: 60
  pod_cidr:
    description: This node's pod CIDR; its first address is the gateway on C(cni0). Required with O(state=present).
    type: str
  mtu:
    description: MTU of the pods' interfaces (underlay MTU less the backend's overhead). Required with O(state=present).
    type: int
  pids_limit:
    description:
      - Processes a pod may hold at once (the C(pids.max) of its cgroup), as kubelet's
        C(podPidsLimit). A fork bomb in one pod stops there; the node and other pods go on.
    type: int
    default: 1024
  cni_conflist:
    description:
      - A CNI network configuration list (a C(.conflist) file on the node) whose plugin chain wires the pods instead
        of podnet (the pods role's C(podnet_cni)). podnet still makes each sandbox (C(cni-<id>) held by pause, C(lo)
        up), then runs the chain's ADD on it (C(CNI_NETNS=/run/netns/cni-<id>), C(CNI_IFNAME=eth0),
        C(CNI_CONTAINERID) the pod's uid); the pod's address, veth and MAC come from the chain's result, not from
        podnet's IPAM. Removing a pod runs DEL over the chain in reverse, with the cached result, from the list that
        wired it; a pod's check is the chain's CHECK. Results are cached in C(<state_dir>/cni/results).
      - The list is read and checked (every plugin found in O(cni_path) and speaking its C(cniVersion)) before any
        change; a fault fails naming the field. A pod wired by another list, or by podnet, is made again.
      - Not given (nor O(cni_config)), podnet wires the pods itself (native).
    type: path
  cni_config:
    description:
      - The same list given whole (a dict, or its JSON text) instead of a file, as the pods role passes the list it
        renders from C(/run/flannel/subnet.env); each pod's record keeps the list that wired it.
    type: raw
  cni_path:
    description:
      - Folders where the chain's plugin programs are looked for, in order (C(CNI_PATH)), also to remove a pod
        a chain wired (DEL) once the node has gone native or with O(state=absent).
    type: list
    elements: path
    default: [/usr/lib/cni, /opt/cni/bin]
  state:
    description: C(absent) removes every pod of the node and what pods left on it.
  view:
    description:
      - Paths containers see, read-only, besides the node's system folders
        (the pods' Python and tools). For a virtual environment, the Python
        installation it was made from is shown too.
    type: list
    elements: path
    default: []
extends_documentation_fragment: [podnet]
author: podnet developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Run the pods of this node.
  podnet_pods:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    pods:
      - namespace: default
        name: multi-container-pod
        labels: {app: demo}
        containers:
          - {name: curl, argv: [sleep, 365d]}
          - {name: httpbin, argv: [gunicorn, -b, "0.0.0.0:80", "httpbin:app"]}

- name: Run a pod whose init container waits for its Service's DNS name first.
  podnet_pods:
    pod_cidr: 10.42.1.0/24
    mtu: 1450
    init_timeout: 30
    pods:
      - namespace: default
        name: web
        init_containers:
          - {name: wait-dns, argv: [sh, -c, "until getent hosts db; do sleep 1; done"]}
        containers:
          - {name: web, argv: [python3, -m, http.server, "80"]}

- name: Run the pods the cluster plan placed on this node, as the pods role does.
  podnet_pods:
    pod_cidr: "{{ podnet_plan.nodes[inventory_hostname].pod_cidr }}"
    mtu: "{{ podnet_plan.nodes[inventory_hostname].mtu }}"
    pods: "{{ podnet_plan.nodes[inventory_hostname].pods_json }}"

- name: Remove every pod of this node (a cluster reset).
  podnet_pods:
    state: absent
'''

RETURN = r'''
pods:
  description: Each pod of the node after the call, by namespace/name.
  returned: always
  type: dict
  sample: {default/multi-container-pod: {ip: 10.42.1.14, netns: cni-607c5530-b6d8-ba57-420e-a467d7b10c56,
           veth: veth7912056b, mac: "f2:c8:17:b6:5f:e5"}}
pending:
  description:
    - In check mode, the pods that would get a new address (created or recreated), which
      podnet_policy takes as C(pending) to say which other nodes' tables follow them; a real run has none.
  returned: always
  type: list
  elements: str
  sample: [default/web]
ips:
  description:
    - The IP of each pod of the node after the call, by namespace/name (what podnet_policy takes as C(running)).
  returned: always
  type: dict
  sample: {default/multi-container-pod: 10.42.1.14}
unready:
  description:
    - The pods of RV(ips) that run but are not ready, sorted, as C(namespace/name) (what Services take out of their
      endpoints) - a readiness or startup probe failed or has not passed yet (C(initial_delay)), or a container
      exited and its restart policy keeps it down. A pod created or restarted in this run is judged after it started,
      its readiness probe retried for a few seconds. In check mode, as the pods are now.
  returned: always
  type: list
  elements: str
  sample: [default/web-7c5ddbdf54-2xbqz]
failed_pods:
  description:
    - The pods of the node that ended C(Failed) and stay so, by namespace/name, with why. They hold no
      address, and are not in RV(ips).
  returned: always
  type: dict
  sample: {default/migrate: "init container check exited with code 3 (tried once, restartPolicy Never): none of
             its containers started; its log ends: db unreachable"}
actions:
  description:
    - What was done (or would be, in check mode) as verb, pod and reason. A pod created or made again whose init
      containers run first says so, naming them in order.
  returned: always
  type: list
  elements: list
  sample: [[create, default/web, "new pod; init containers run first: wait-dns"]]
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core.reconcile import NODE_STATE_OPTIONS, from_text, run_module
from ansible.module_utils.podnet.kernel.netlink import require_pyroute2


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[('cni_conflist', 'cni_config')],
                           required_if=[('state', 'present', ('pods', 'pod_cidr', 'mtu'))])
    require_pyroute2(module)
    run_module(module, pods_of_node)


def pods_of_node(module):
    from ansible.module_utils.podnet.pods.reconciler import PodsReconciler, container_view
    p = module.params
    wanted = {'%s/%s' % (pod['namespace'], pod['name']): pod for pod in pods_of(p['pods'])}
    return PodsReconciler(p['state_dir'], None if p['state'] == 'absent' else p['pod_cidr'], p['mtu'],
                          module.run_command, wanted, module.check_mode, container_view(p['view']),
                          p['pids_limit'], init_timeout=p['init_timeout'],
                          cni=(None if p['state'] == 'absent' else p['cni_conflist'] or p['cni_config'], p['cni_path']))


CONTAINER = dict(name=dict(type='str', required=True),
                 argv=dict(type='list', elements='str', required=True),
                 env=dict(type='dict', default={}),
                 working_dir=dict(type='str'),
                 ports=dict(type='list', elements='raw', default=[]),
                 image=dict(type='str'),
                 capabilities=dict(type='list', elements='str'),
                 resources=dict(type='dict', default={}),
                 seccomp=dict(type='str', choices=['RuntimeDefault', 'Unconfined'], default='RuntimeDefault'),
                 user=dict(type='dict', options=dict(uid=dict(type='int', default=0), gid=dict(type='int', default=0),
                                                     groups=dict(type='list', elements='int', default=[]))),
                 no_new_privs=dict(type='bool', default=False),
                 mounts=dict(type='list', elements='dict', default=[],
                             options=dict(source=dict(type='str', required=True),
                                          target=dict(type='str', required=True))),
                 stand_in=dict(type='bool', default=False),
                 probes=dict(type='dict', default={}))

DNS = dict(policy=dict(type='str', choices=['ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None'],
                       default='ClusterFirst'),
           nameservers=dict(type='list', elements='str', default=[]),
           searches=dict(type='list', elements='str', default=[]),
           options=dict(type='list', elements='list', default=[]),
           cluster_dns=dict(type='str'),
           domain=dict(type='str', default='cluster.local'))


POD = dict(namespace=dict(type='str', required=True),
           name=dict(type='str', required=True),
           hostname=dict(type='str'),
           subdomain=dict(type='str'),
           dns=dict(type='dict', options=DNS),
           labels=dict(type='dict', default={}),
           restart_policy=dict(type='str', choices=['Always', 'OnFailure', 'Never'], default='Always'),
           node=dict(type='str'),
           owner=dict(type='str', default=''),
           qos=dict(type='str', choices=['Guaranteed', 'Burstable', 'BestEffort'], default='BestEffort'),
           containers=dict(type='list', elements='dict', required=True, options=CONTAINER),
           init_containers=dict(type='list', elements='dict', default=[], options=CONTAINER))


def pods_of(value):
    """The pods option, a list or its JSON text, each pod checked and
    defaulted against POD as AnsibleModule checks a list option."""
    return [_checked(index, pod) for index, pod in enumerate(from_text('pods', value or [], list))]


def _checked(index, pod):
    """One pod; a fault names it by index and, if it can, namespace/name."""
    subject = 'pods[%d]' % index
    if not isinstance(pod, dict):
        raise SpecError(subject, 'must be a dict, got %s' % type(pod).__name__)
    if pod.get('namespace') and pod.get('name'):
        subject += ' (%s/%s)' % (pod['namespace'], pod['name'])
    checked = ArgumentSpecValidator(POD).validate(pod)
    if checked.error_messages:
        raise SpecError(subject, '; '.join(('unsupported parameter %s' if isinstance(e, UnsupportedError) else '%s')
                                           % e for e in checked.errors.errors))
    pod = checked.validated_parameters
    for kind in ('init_containers', 'containers'):
        for number, container in enumerate(pod[kind]):
            _check_container(subject, '%s[%d] (%s)' % (kind, number, container['name']), container,
                             kind == 'init_containers')
    names = [c['name'] for c in pod['init_containers'] + pod['containers']]
    if len(set(names)) != len(names):
        raise SpecError(subject, 'init_containers and containers: a name is used twice (%s): each names its '
                        'log and cgroup' % ', '.join(sorted({n for n in names if names.count(n) > 1})))
    return pod


def _check_container(subject, at, container, init):
    if not container['argv']:
        raise SpecError(subject, '%s: argv is empty: a container needs a program to run' % at)
    if init and container['probes']:
        raise SpecError(subject, '%s: probes: an init container has none (it runs to completion)' % at)
    for index, mount in enumerate(container['mounts']):
        _check_mount(subject, '%s: mounts[%d]' % (at, index), mount)


def _check_mount(subject, at, mount):
    """A mount shows a folder of the state directory, nothing above it."""
    source = mount['source']
    if os.path.isabs(source) or '..' in source.split('/') or not source.strip('/.'):
        raise SpecError(subject, '%s.source: %r must be a folder within state_dir, relative to it' % (at, source))
    if not os.path.isabs(mount['target']) or '..' in mount['target'].split('/'):
        raise SpecError(subject, '%s.target: %r must be an absolute path' % (at, mount['target']))


def argument_spec():
    return dict(pods=dict(type='raw'),
                pod_cidr=dict(type='str'),
                mtu=dict(type='int'),
                view=dict(type='list', elements='path', default=[]),
                pids_limit=dict(type='int', default=1024),
                init_timeout=dict(type='int', default=60),
                cni_conflist=dict(type='path'),
                cni_config=dict(type='raw'),
                cni_path=dict(type='list', elements='path', default=['/usr/lib/cni', '/opt/cni/bin']),
                **NODE_STATE_OPTIONS)


if __name__ == '__main__':
    main()
