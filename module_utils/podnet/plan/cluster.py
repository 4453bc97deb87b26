"""The cluster plan, made on the controller before any node changes.

From the manifests, the inventory's nodes and the image catalog it derives
everything the node modules need: each node's pod CIDR, MTU and VTEP MAC,
the pods placed on it with their resolved command lines, resources, seccomp
profiles and QoS classes, and its peers.
Every refusal (bad manifest, unknown image, unknown nodeName, overlapping
CIDRs, host-gw across routed racks, pods beyond a pod CIDR or the memory
of a machine) happens here, for all nodes at once.
"""
import dataclasses
import os

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.node import backend
from ansible.module_utils.podnet.plan import capacity, images, manifests, podcidr, probes
from ansible.module_utils.podnet.services import dns
from ansible.module_utils.podnet.services import spec as service_spec

VXLAN_OVERHEAD = backend.VXLAN_OVERHEAD
# The cluster DNS: the clusterIP of kube-dns in roles/cluster/files/cluster-dns.yaml,
# the cluster domain, and where its pod sees the zone its node keeps (podnet-dns's default).
CLUSTER_DNS_IP = service_spec.DNS_IP
CLUSTER_DOMAIN = 'cluster.local'
ZONE_MOUNT = {'source': dns.DNS_DIR, 'target': '/var/lib/podnet-dns'}


def resolve_paths(paths, root):
    """Manifest paths as given, else relative to the project folder."""
    return [p if os.path.isabs(p) or os.path.exists(p) else os.path.join(root, p) for p in paths]


def _container(container, argv, stand_in=False):
    """What the node needs to run one container. resources: memory in bytes
    and cpu in millicores ({memory,cpu}_{limit,request}, None where unset);
    seccomp: RuntimeDefault or Unconfined. A stand-in has no working_dir
    (the image's folders are not there) and says it is one."""
    found = {'name': container.name, 'argv': argv, 'env': dict(container.env),
             'working_dir': None if stand_in else container.working_dir, 'capabilities': container.capabilities,
             'ports': [{'name': p.name, 'containerPort': p.container_port, 'protocol': p.protocol}
                       for p in container.ports],
             'resources': dataclasses.asdict(container.resources), 'seccomp': container.seccomp,
             'user': {'uid': container.user, 'gid': container.group, 'groups': list(container.groups)},
             'no_new_privs': container.no_new_privs, 'mounts': []}
    # Only when there are: a pod planned before stand-ins and probes keeps its spec hash.
    planned_probes = container.probes
    if stand_in:
        found['stand_in'] = True
        planned_probes = probes.for_stand_in(planned_probes, {p.container_port for p in container.ports
                                                              if p.protocol == 'TCP'})
    if planned_probes:
        found['probes'] = planned_probes
    return found


def _local_paths(catalog):
    """{image name: {path in the image: local argv}} from the catalog's `paths`."""
    return {images.image_name(k): v.get('paths') or {} for k, v in catalog.items()}


class Images:
    """The catalog as containers meet it: each container's command line,
    or the stand-in's, and which containers got a stand-in."""

    def __init__(self, catalog, unknown):
        self.catalog, self.unknown, self.paths = catalog, unknown, _local_paths(catalog)
        self.stand_ins = {}  # image as written -> [ns/pod/container]

    def container(self, container, pod, init=False):
        """The container as the node runs it (_container); init: one of the
        pod's init containers, whose stand-in completes at once."""
        if images.stands_in(container, self.catalog, self.unknown):
            self.stand_ins.setdefault(container.image, []).append('%s/%s' % (pod.key, container.name))
            return _container(container, images.stand_in_argv(container, self.catalog, pod, init=init),
                              stand_in=True)
        argv = images.resolve(container, self.catalog, pod)
        local = self.paths.get(images.image_name(container.image), {}).get(argv[0])
        return _container(container, list(local) + argv[1:] if local else argv)


def planned_notes(planned):
    """What a planned pod's containers do not do: a stand-in serves no SCTP
    (no SCTP sockets), an init container's stand-in does nothing but
    complete, and some probes count as passing untried."""
    return ['init container %s: its stand-in completes at once (exit 0), doing nothing its image would'
            % c['name'] for c in planned.get('init_containers') or () if c.get('stand_in')] + [
        'container %s: its stand-in does not serve SCTP port %d (the nodes have no SCTP sockets)'
        % (c['name'], p['containerPort']) for c in planned['containers'] if c.get('stand_in')
        for p in c['ports'] if p['protocol'] not in images.STAND_IN_PROTOCOLS] + [
        note for c in planned['containers'] for note in probes.notes(c['name'], c.get('probes') or {})]


def _pod(pod, catalog, cluster_dns):
    """catalog: Images; cluster_dns: the built-in cluster DNS manifest, or
    None without one: its pods alone see the node's zone (no user manifest
    mounts anything)."""
    containers = [catalog.container(c, pod) for c in pod.containers]
    if cluster_dns and pod.source == cluster_dns:
        for container in containers:
            container['mounts'] = [dict(ZONE_MOUNT)]
    planned = {'namespace': pod.namespace, 'name': pod.name, 'hostname': pod.hostname,
               'subdomain': pod.dns.subdomain, 'labels': dict(pod.labels), 'restart_policy': pod.restart_policy,
               'owner': pod.owner, 'qos': pod.qos_class, 'containers': containers,
               'dns': pod.dns.for_node(CLUSTER_DNS_IP if cluster_dns else None, CLUSTER_DOMAIN)}
    if pod.init_containers:  # only when there are: the plan of a pod without any is as before
        planned['init_containers'] = [catalog.container(c, pod, init=True) for c in pod.init_containers]
    return planned


def build(manifest_paths, nodes, cluster_cidr, backend_name, catalog, cluster_dns=None,
          unknown_images=images.STAND_IN):
    """nodes: [{name, underlay_ip, underlay_prefixlen, underlay_ifname,
    underlay_mtu, pod_cidr (persisted or None), explicit_pod_cidr, pods
    (keys of the pods running there), kernel, memory_available}];
    cluster_dns: the cluster DNS manifest to run (roles/cluster/files/
    cluster-dns.yaml), or None for a cluster without DNS; unknown_images:
    stand-in or refuse (podnet_unknown_images)."""
    order = [n['name'] for n in nodes]
    found = manifests.load(list(manifest_paths) + ([cluster_dns] if cluster_dns else []),
                           order)  # refuses an invalid policy too
    running = {key: n['name'] for n in nodes for key in n.get('pods') or ()}
    placement = manifests.schedule(found.pods, order, running)
    cidrs = podcidr.allocate(cluster_cidr, order, {n['name']: n.get('pod_cidr') for n in nodes},
                             {n['name']: n['explicit_pod_cidr'] for n in nodes
                              if n.get('explicit_pod_cidr')})
    known = Images(catalog, unknown_images)
    pods = {p.key: _pod(p, known, cluster_dns) for p in found.pods}
    records = {n['name']: dict(n, pod_cidr=cidrs[n['name']], vtep_mac=names.stable_mac('vtep', n['name']))
               for n in nodes}
    capacity.check_pod_cidrs(placement, cidrs)
    capacity.check_memory(placement, nodes, running)
    capacity.check_neighbours(placement, nodes)
    plan = {}
    for name, node in records.items():
        peers = [{k: p[k] for k in ('name', 'underlay_ip', 'pod_cidr', 'vtep_mac')}
                 for other, p in records.items() if other != name]
        backend.wanted_state(backend_name, node, peers)  # refuses host-gw across racks
        overhead = VXLAN_OVERHEAD if backend_name == 'vxlan' else 0
        plan[name] = {'pod_cidr': node['pod_cidr'], 'vtep_mac': node['vtep_mac'],
                      'mtu': node['underlay_mtu'] - overhead, 'peers': peers,
                      'node': {k: node[k] for k in ('name', 'underlay_ip', 'underlay_prefixlen',
                                                    'underlay_ifname', 'underlay_mtu', 'pod_cidr',
                                                    'vtep_mac')},
                      'pods': [pods[k] for k in sorted(pods) if placement[k] == name]}
    # What every node's policy compiler needs of each pod, and no more: at
    # 1,000 pods it is sent to every node, and the full pods tripled that task.
    everyone = [{'namespace': pods[k]['namespace'], 'name': pods[k]['name'], 'node': placement[k],
                 'labels': pods[k]['labels'], 'hostname': pods[k]['hostname'], 'subdomain': pods[k]['subdomain'],
                 'ports': [port for c in pods[k]['containers'] for port in c['ports']]}
                for k in sorted(pods)]
    return {'backend': backend_name, 'nodes': plan, 'placement': placement, 'pods': everyone,
            'namespaces': {n: dict(ns.labels) for n, ns in found.namespaces.items()},
            'policies': found.policies, 'ignored': found.ignored,
            'services': service_spec.plan(found.services),
            'notes': _notes(found.pods, pods), 'stand_ins': known.stand_ins,
            'workloads': {w: sorted(p.key for p in found.pods if p.owner == w)
                          for w in ('%s %s' % (w.kind, w.key) for w in found.workloads)}}


def _notes(found, planned):
    """By pod (or the workload that made it), what podnet does not set up."""
    notes = {}
    for pod in found:
        said = list(pod.notes) + planned_notes(planned[pod.key])
        if said:
            notes[pod.owner or 'Pod %s' % pod.key] = said
    return notes
