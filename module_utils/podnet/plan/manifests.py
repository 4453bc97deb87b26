"""Kubernetes manifests read from files, validated as the API server would.

There is no API server in podnet, so this module plays its part: every
object is checked, defaulted and typed before a single pod starts, and each
refusal names the file, the object and the field, e.g.
`manifests/seed/pods.yaml: Pod default/web: spec.containers[1].image: ...`.
Files are read within bounds by manifest_files, Pods are read by podspec,
workloads (Deployments and the like) become the pods they keep (workloads),
Services are read by services.spec,
NetworkPolicies are validated by netpol and stay raw dicts: the policy
compiler reads them itself. Objects of any other kind (ConfigMaps,
Secrets, ServiceAccounts...) are accepted and listed as ignored, never
silently dropped: a real application's manifests hold many of them.
"""
import copy
import dataclasses
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.core import k8s
from ansible.module_utils.podnet.plan import manifest_files, podspec, workloads
from ansible.module_utils.podnet.policy import netpol
from ansible.module_utils.podnet.services import spec as service_spec

# Kinds of no namespace among those podnet ignores: named without one.
CLUSTER_SCOPED = ('ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'PriorityClass',
                  'CustomResourceDefinition', 'IngressClass', 'RuntimeClass', 'APIService', 'Node',
                  'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'CSIDriver')
API_VERSIONS = {'Namespace': 'v1', 'Pod': 'v1', 'Service': 'v1', 'NetworkPolicy': 'networking.k8s.io/v1',
                **workloads.KINDS}


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict  # always holds kubernetes.io/metadata.name: <name>


@dataclass
class Manifests:
    namespaces: dict = field(default_factory=dict)  # name -> Namespace
    pods: list = field(default_factory=list)
    policies: list = field(default_factory=list)  # raw NetworkPolicy dicts
    workloads: list = field(default_factory=list)  # [Workload], whose pods are in pods
    services: list = field(default_factory=list)  # [services.spec.Service]
    ignored: list = field(default_factory=list)  # `Kind ns/name` of the objects podnet does not model


def _kind(raw, location):
    if not isinstance(raw, dict):
        raise SpecError(location, 'must be a mapping (a Kubernetes object)')
    kind = raw.get('kind')
    if not isinstance(kind, str) or not kind:
        raise SpecError(location, 'kind: required, must be a non-empty string')
    if kind not in API_VERSIONS:
        if not isinstance(raw.get('apiVersion'), str) or not raw['apiVersion']:
            raise SpecError(location, 'apiVersion: required, must be a non-empty string')
        return kind
    if raw.get('apiVersion') != API_VERSIONS[kind]:
        raise SpecError(location, 'apiVersion: %r is not %s, the apiVersion of %s'
                        % (raw.get('apiVersion'), API_VERSIONS[kind], kind))
    return kind


def _subject(path, location, kind, raw):
    """`file: Pod ns/name` once the object has a name, else its location."""
    meta = raw.get('metadata')
    name = meta.get('name') if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return '%s: %s' % (location, kind)
    if kind == 'Namespace':
        return '%s: Namespace %s' % (path, name)
    return '%s: %s %s/%s' % (path, kind, meta.get('namespace') or k8s.DEFAULT_NAMESPACE, name)


def _namespace(raw, subject):
    meta = k8s.section(raw, 'metadata', subject)
    name = k8s.name(meta.get('name'), 'metadata.name', subject, label=True)
    return Namespace(name, {**k8s.labels(meta.get('labels'), 'metadata.labels', subject),
                            k8s.NAME_LABEL: name})


def _policy(raw, subject):
    """The raw policy with its namespace filled in, after netpol checked it."""
    meta = k8s.section(raw, 'metadata', subject)
    k8s.name(meta.get('name'), 'metadata.name', subject)
    policy = copy.deepcopy(raw)
    policy['metadata']['namespace'] = k8s.namespace_of(meta, subject)
    netpol.parse_policy(policy, subject)
    return policy


def _read(kind, raw, subject, path):
    """(object, identity, namespace or None) of one validated object."""
    if kind == 'Namespace':
        obj = _namespace(raw, subject)
        return obj, obj.name, None
    if kind == 'Pod':
        obj = podspec.parse_pod(raw, subject, path)
        return obj, obj.key, obj.namespace
    if kind in workloads.KINDS:
        obj = workloads.parse(kind, raw, subject)
        return obj, obj.key, obj.namespace
    if kind == 'Service':
        obj = service_spec.parse(raw, subject)
        return obj, obj.key, obj.namespace
    if kind not in API_VERSIONS:
        return _ignored(kind, raw, subject)
    obj = _policy(raw, subject)
    namespace = obj['metadata']['namespace']
    return obj, '%s/%s' % (namespace, obj['metadata']['name']), namespace


def _ignored(kind, raw, subject):
    """An object podnet does not model: named, never read further."""
    meta = k8s.section(raw, 'metadata', subject)
    name = k8s.name(meta.get('name'), 'metadata.name', subject)
    identity = name if kind in CLUSTER_SCOPED else '%s/%s' % (k8s.namespace_of(meta, subject), name)
    return '%s %s' % (kind, identity), identity, None


def _check_namespaces(namespaces, seen):
    """Every pod and policy lives in a declared namespace, or in default or kube-system."""
    for _, subject, namespace in seen.values():
        if namespace is not None and namespace not in namespaces:
            raise SpecError(subject, 'metadata.namespace: namespace %r is not declared '
                            '(declared: %s)' % (namespace, ', '.join(sorted(namespaces))))


def load(paths, nodes=()):
    """Read and validate every manifest under paths; return Manifests.
    nodes: the inventory's node names (a DaemonSet runs a pod on each).

    The set is checked as a whole (duplicates, namespaces), so a refusal
    comes before anything is started.
    """
    found, seen = Manifests(), {}  # (kind, identity) -> (location, subject, namespace)
    for path, location, raw in manifest_files.documents(paths):
        kind = _kind(raw, location)
        subject = _subject(path, location, kind, raw)
        obj, identity, namespace = _read(kind, raw, subject, path)
        _once(seen, kind, identity, location, subject, namespace)
        if kind == 'Namespace':
            found.namespaces[identity] = obj
        elif kind in workloads.KINDS:
            found.workloads.append(obj)
            found.pods += _workload_pods(obj, nodes, seen, location, path)
        elif kind not in API_VERSIONS:
            found.ignored.append(obj)
        elif kind == 'Service':
            found.services.append(obj)
        else:
            (found.pods if kind == 'Pod' else found.policies).append(obj)
    for name in (k8s.DEFAULT_NAMESPACE, k8s.SYSTEM_NAMESPACE):
        found.namespaces.setdefault(name, Namespace(name, {k8s.NAME_LABEL: name}))
    _check_namespaces(found.namespaces, seen)
    return found


def _once(seen, kind, identity, location, subject, namespace):
    if (kind, identity) in seen:
        raise SpecError(subject, 'metadata.name: %s %s is also declared in %s'
                        % (kind, identity, seen[kind, identity][0]))
    seen[kind, identity] = (location, subject, namespace)


def _workload_pods(workload, nodes, seen, location, path):
    """The Pods a workload keeps, read as any Pod is (a fault names the
    workload's template), each name taken once among all pods."""
    found = []
    for raw in workloads.pods(workload, nodes):
        pod = dataclasses.replace(podspec.parse_pod(raw, '%s: spec.template' % workload.subject, path),
                                  owner='%s %s' % (workload.kind, workload.key))
        _once(seen, 'Pod', pod.key, location, '%s: pod %s' % (workload.subject, pod.name), pod.namespace)
        found.append(pod)
    return found


def schedule(pods, nodes, running=None):
    """{pod key: node}: spec.nodeName pins a pod; a pod already running on a
    node stays there (Kubernetes never moves a running pod); the others,
    sorted by key, each go to the node with the fewest pods so far (ties:
    node order), so the same input always gives the same placement."""
    nodes, running = list(nodes), running or {}
    count, placed = dict.fromkeys(nodes, 0), {}
    for pod in pods:
        node = pod.node_name or (running.get(pod.key) if running.get(pod.key) in count else None)
        if node is not None:
            if node not in count:
                raise SpecError(pod.subject, 'spec.nodeName: %r is not a node of the '
                                'inventory (nodes: %s)' % (node, ', '.join(nodes)))
            placed[pod.key] = node
            count[node] += 1
    for pod in sorted((p for p in pods if p.key not in placed), key=lambda p: p.key):
        if not nodes:
            raise SpecError(pod.subject, 'no node to schedule it on (no nodes)')
        node = min(nodes, key=count.__getitem__)
        placed[pod.key] = node
        count[node] += 1
    return {pod.key: placed[pod.key] for pod in pods}
