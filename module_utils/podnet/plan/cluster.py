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
from ansible.module_utils.podnet.plan import capacity, images, manifests, podcidr
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


def _container(container, argv):
    """What the node needs to run one container. resources: memory in bytes
    and cpu in millicores ({memory,cpu}_{limit,request}, None where unset);
    seccomp: RuntimeDefault or Unconfined."""
    return {'name': container.name, 'argv': argv, 'env': dict(container.env),
            'working_dir': container.working_dir, 'capabilities': container.capabilities,
            'ports': [{'name': p.name, 'containerPort': p.container_port, 'protocol': p.protocol}
                      for p in container.ports],
            'resources': dataclasses.asdict(container.resources), 'seccomp': container.seccomp,
            'user': {'uid': container.user, 'gid': container.group, 'groups': list(container.groups)},
            'no_new_privs': container.no_new_privs, 'mounts': []}


def _local_paths(catalog):
    """{image name: {path in the image: local argv}} from the catalog's `paths`."""
    return {images.image_name(k): v.get('paths') or {} for k, v in catalog.items()}


def _pod(pod, catalog, paths, cluster_dns):
    """cluster_dns: the built-in cluster DNS manifest, or None without one:
    its pods alone see the node's zone (no user manifest mounts anything)."""
    argvs = images.resolve_pod(pod, catalog)
    containers = []
    for c in pod.containers:
        argv = argvs[c.name]
        local = paths.get(images.image_name(c.image), {}).get(argv[0])
        containers.append(_container(c, list(local) + argv[1:] if local else argv))
        if cluster_dns and pod.source == cluster_dns:
            containers[-1]['mounts'] = [dict(ZONE_MOUNT)]
    return {'namespace': pod.namespace, 'name': pod.name, 'hostname': pod.hostname,
            'subdomain': pod.dns.subdomain, 'labels': dict(pod.labels), 'restart_policy': pod.restart_policy,
            'qos': pod.qos_class, 'containers': containers,
            'dns': pod.dns.for_node(CLUSTER_DNS_IP if cluster_dns else None, CLUSTER_DOMAIN)}


def build(manifest_paths, nodes, cluster_cidr, backend_name, catalog, cluster_dns=None):
    """nodes: [{name, underlay_ip, underlay_prefixlen, underlay_ifname,
    underlay_mtu, pod_cidr (persisted or None), explicit_pod_cidr, pods
    (keys of the pods running there), kernel, memory_available}];
    cluster_dns: the cluster DNS manifest to run (roles/cluster/files/
    cluster-dns.yaml), or None for a cluster without DNS."""
    order = [n['name'] for n in nodes]
    found = manifests.load(list(manifest_paths) + ([cluster_dns] if cluster_dns else []),
                           order)  # refuses an invalid policy too
    running = {key: n['name'] for n in nodes for key in n.get('pods') or ()}
    placement = manifests.schedule(found.pods, order, running)
    cidrs = podcidr.allocate(cluster_cidr, order, {n['name']: n.get('pod_cidr') for n in nodes},
                             {n['name']: n['explicit_pod_cidr'] for n in nodes
                              if n.get('explicit_pod_cidr')})
    paths = _local_paths(catalog)
    pods = {p.key: _pod(p, catalog, paths, cluster_dns) for p in found.pods}
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
            'notes': {p.owner or 'Pod %s' % p.key: list(p.notes) for p in found.pods if p.notes},
            'workloads': {w: sorted(p.key for p in found.pods if p.owner == w)
                          for w in ('%s %s' % (w.kind, w.key) for w in found.workloads)}}
