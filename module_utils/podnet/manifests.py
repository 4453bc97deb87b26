"""Kubernetes manifests read from files, validated as the API server would.

There is no API server in podnet, so this module plays its part: every
object is checked, defaulted and typed before a single pod starts, and each
refusal names the file, the object and the field, e.g.
`manifests/seed/pods.yaml: Pod default/web: spec.containers[1].image: ...`.
NetworkPolicies stay raw dicts: the policy compiler reads them itself.
"""
import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from ansible.module_utils.podnet.errors import SpecError

SUFFIXES = ('.yaml', '.yml', '.json')
RESTART_POLICIES = ('Always', 'OnFailure', 'Never')
DEFAULT_NAMESPACE = 'default'
NAME_LABEL = 'kubernetes.io/metadata.name'
PROTOCOLS = ('TCP', 'UDP', 'SCTP')
API_VERSIONS = {'Namespace': 'v1', 'Pod': 'v1', 'NetworkPolicy': 'networking.k8s.io/v1'}

DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
QUALIFIED_NAME = re.compile(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$')
IANA_SVC_NAME = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
ENV_NAME = re.compile(r'^[-._a-zA-Z][-._a-zA-Z0-9]*$')
QUALIFIED_TEXT = '1-63 letters, digits, -, _ or . starting and ending with a letter or digit'


@dataclass(frozen=True)
class ContainerPort:
    name: object  # an IANA_SVC_NAME, or None for an unnamed port
    container_port: int
    protocol: str = 'TCP'


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: list = field(default_factory=list)  # [] when not given
    args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)  # name -> value, in manifest order
    ports: list = field(default_factory=list)  # [ContainerPort]
    working_dir: object = None


@dataclass(frozen=True)
class Pod:
    """A pod as the API server would store it."""
    namespace: str
    name: str
    labels: dict
    node_name: object  # spec.nodeName, or None to let schedule() place it
    containers: list
    restart_policy: str = 'Always'  # Always | OnFailure | Never

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict  # always holds kubernetes.io/metadata.name: <name>


@dataclass
class Manifests:
    namespaces: dict = field(default_factory=dict)  # name -> Namespace
    pods: list = field(default_factory=list)
    policies: list = field(default_factory=list)  # raw NetworkPolicy dicts


def _files(paths):
    """Manifest files in the given order; a directory gives its own *.yaml,
    *.yml and *.json (not recursive), sorted by name."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files, seen = [], set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted((p for p in path.iterdir()
                            if p.suffix in SUFFIXES and p.is_file()), key=lambda p: p.name)
        elif path.is_file():
            found = [path]
        else:
            raise SpecError(str(given), 'no such manifest file or directory')
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def _parse(path):
    """[(document number, object)] of one file; JSON is one document."""
    try:
        text = path.read_text(encoding='utf-8')
    except (OSError, UnicodeError) as exc:
        raise SpecError(str(path), 'cannot read: %s' % exc) from None
    if path.suffix == '.json':
        try:
            return [(1, json.loads(text))]
        except ValueError as exc:
            raise SpecError(str(path), 'invalid JSON: %s' % exc) from None
    docs = []
    try:
        for doc in yaml.safe_load_all(text):
            docs.append((len(docs) + 1, doc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        at = ' at line %d, column %d' % (mark.line + 1, mark.column + 1) if mark else ''
        raise SpecError('%s document %d' % (path, len(docs) + 1), 'invalid YAML%s: %s'
                        % (at, getattr(exc, 'problem', None) or exc)) from None
    return docs


def _documents(files):
    """(file, location, object) of every non-empty document, List items
    expanded; location reads `a.yaml document 2` (1-based) or `... items[0]`."""
    for path in files:
        for number, doc in _parse(path):
            where = '%s document %d' % (path, number)
            if isinstance(doc, dict) and doc.get('kind') == 'List':
                items = doc.get('items') or []
                if not isinstance(items, list):
                    raise SpecError(where, 'items: must be a list')
                for index, item in enumerate(items):
                    yield str(path), '%s items[%d]' % (where, index), item
            elif doc is not None:
                yield str(path), where, doc


def _kind(raw, location):
    if not isinstance(raw, dict):
        raise SpecError(location, 'must be a mapping (a Kubernetes object)')
    kind = raw.get('kind')
    if kind not in API_VERSIONS:
        raise SpecError(location, 'kind: unsupported kind %r (podnet reads %s)' % (
            kind, ', '.join('%s %s' % kv for kv in API_VERSIONS.items())))
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
    return '%s: %s %s/%s' % (path, kind, meta.get('namespace') or DEFAULT_NAMESPACE, name)


def _mapping(raw, key, subject, where):
    value = raw.get(key)
    if not isinstance(value, dict):
        raise SpecError(subject, '%s: required, must be a mapping' % where)
    return value


def _name(value, subject, where, pattern, limit):
    if not isinstance(value, str) or not value:
        raise SpecError(subject, '%s: required, must be a non-empty string' % where)
    if len(value) > limit or not pattern.match(value):
        kind = 'DNS-1123 label' if pattern is DNS_LABEL else 'DNS-1123 subdomain'
        raise SpecError(subject, '%s: %r is not a %s (lowercase letters, digits and '
                        "'-', at most %d characters)" % (where, value, kind, limit))
    return value


def _qualified(text):
    return len(text) <= 63 and QUALIFIED_NAME.match(text)


def _labels(meta, subject):
    labels = meta.get('labels') or {}
    if not isinstance(labels, dict):
        raise SpecError(subject, 'metadata.labels: must be a mapping')
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition('/')
        if not isinstance(key, str) or not _qualified(name) or '/' in key and (
                len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
            raise SpecError(subject, 'metadata.labels: key %r must be [DNS-1123 subdomain/]'
                            'name, the name %s' % (key, QUALIFIED_TEXT))
        if not isinstance(value, str) or value and not _qualified(value):
            raise SpecError(subject, 'metadata.labels[%r]: %r must be a string, empty or %s'
                            % (key, value, QUALIFIED_TEXT))
    return dict(labels)


def _namespace_of(meta, subject):
    namespace = meta.get('namespace')
    if namespace in (None, ''):
        return DEFAULT_NAMESPACE
    return _name(namespace, subject, 'metadata.namespace', DNS_LABEL, 63)


def _list(raw, key, where, subject, of=object):
    """raw[key] as a list ([] when absent) whose items are all of type `of`."""
    value = raw.get(key)
    if value is not None and (not isinstance(value, list)
                              or not all(isinstance(v, of) for v in value)):
        raise SpecError(subject, '%s.%s: must be a list%s'
                        % (where, key, ' of strings' if of is str else ''))
    return list(value or [])


def _env(raw, where, subject):
    env = {}
    for i, item in enumerate(_list(raw, 'env', where, subject)):
        at = '%s.env[%d]' % (where, i)
        if not isinstance(item, dict) or not isinstance(item.get('name'), str) \
                or not ENV_NAME.match(item['name']):
            raise SpecError(subject, '%s.name: required, letters, digits, -, _ and . '
                            'not starting with a digit' % at)
        if 'valueFrom' in item:
            raise SpecError(subject, '%s.valueFrom: not supported by podnet, use value' % at)
        value = '' if item.get('value') is None else item['value']
        if not isinstance(value, str):
            raise SpecError(subject, '%s.value: %r must be a string (quote it)' % (at, value))
        env[item['name']] = value
    return env


def _port(raw, at, subject):
    if not isinstance(raw, dict):
        raise SpecError(subject, '%s: must be a mapping' % at)
    number = raw.get('containerPort')
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise SpecError(subject, '%s.containerPort: %r must be an integer from 1 to 65535'
                        % (at, number))
    protocol = raw.get('protocol', 'TCP')
    if protocol not in PROTOCOLS:
        raise SpecError(subject, '%s.protocol: %r must be one of %s'
                        % (at, protocol, ', '.join(PROTOCOLS)))
    name = raw.get('name')
    if name is not None and not (
            isinstance(name, str) and len(name) <= 15 and IANA_SVC_NAME.match(name)
            and '--' not in name and re.search('[a-z]', name)):
        raise SpecError(subject, "%s.name: %r is not an IANA service name (1-15 lowercase "
                        "letters, digits, inner single '-', a letter)" % (at, name))
    return ContainerPort(name, number, protocol)


def _container(raw, where, subject):
    if not isinstance(raw, dict):
        raise SpecError(subject, '%s: must be a mapping' % where)
    name = _name(raw.get('name'), subject, where + '.name', DNS_LABEL, 63)
    image = raw.get('image')
    if not isinstance(image, str) or not image.strip() or image != image.strip():
        raise SpecError(subject, '%s.image: %r must be a non-empty string without '
                        'surrounding spaces' % (where, image))
    working_dir = raw.get('workingDir')
    if working_dir is not None and not isinstance(working_dir, str):
        raise SpecError(subject, '%s.workingDir: must be a string' % where)
    ports = _list(raw, 'ports', where, subject)
    return Container(
        name=name, image=image, command=_list(raw, 'command', where, subject, str),
        args=_list(raw, 'args', where, subject, str), env=_env(raw, where, subject),
        ports=[_port(p, '%s.ports[%d]' % (where, i), subject) for i, p in enumerate(ports)],
        working_dir=working_dir or None)


def _containers(spec, subject):
    raw = spec.get('containers')
    if not isinstance(raw, list) or not raw:
        raise SpecError(subject, 'spec.containers: required, at least one container')
    containers = [_container(c, 'spec.containers[%d]' % i, subject) for i, c in enumerate(raw)]
    _check_unique(subject, [('spec.containers[%d].name' % i, c.name)
                            for i, c in enumerate(containers)])
    _check_unique(subject, [('spec.containers[%d].ports[%d].name' % (i, j), p.name)
                            for i, c in enumerate(containers)
                            for j, p in enumerate(c.ports) if p.name is not None])
    return containers


def _check_unique(subject, named):
    """named: [(field, name)]; a name given twice is refused at its second field."""
    first = {}
    for where, name in named:
        if name in first:
            raise SpecError(subject, '%s: %r is already used by %s' % (where, name, first[name]))
        first[name] = where


def _pod(raw, subject):
    meta = _mapping(raw, 'metadata', subject, 'metadata')
    namespace = _namespace_of(meta, subject)
    name = _name(meta.get('name'), subject, 'metadata.name', DNS_SUBDOMAIN, 253)
    labels = _labels(meta, subject)
    spec = _mapping(raw, 'spec', subject, 'spec')
    node_name = spec.get('nodeName')
    if node_name is not None:
        _name(node_name, subject, 'spec.nodeName', DNS_SUBDOMAIN, 253)
    if spec.get('hostNetwork'):
        raise SpecError(subject, 'spec.hostNetwork: not supported by podnet')
    restart = spec.get('restartPolicy', 'Always')
    if restart not in RESTART_POLICIES:
        raise SpecError(subject, 'spec.restartPolicy: %r must be one of %s'
                        % (restart, ', '.join(RESTART_POLICIES)))
    return Pod(namespace, name, labels, node_name, _containers(spec, subject), restart)


def _namespace(raw, subject):
    meta = _mapping(raw, 'metadata', subject, 'metadata')
    name = _name(meta.get('name'), subject, 'metadata.name', DNS_LABEL, 63)
    return Namespace(name, {**_labels(meta, subject), NAME_LABEL: name})


def _policy(raw, subject):
    meta = _mapping(raw, 'metadata', subject, 'metadata')
    _name(meta.get('name'), subject, 'metadata.name', DNS_SUBDOMAIN, 253)
    policy = copy.deepcopy(raw)
    policy['metadata']['namespace'] = _namespace_of(meta, subject)
    return policy


def _read(kind, raw, subject):
    """(object, identity, namespace or None) of one validated object."""
    if kind == 'Namespace':
        obj = _namespace(raw, subject)
        return obj, obj.name, None
    if kind == 'Pod':
        obj = _pod(raw, subject)
        return obj, obj.key, obj.namespace
    obj = _policy(raw, subject)
    namespace = obj['metadata']['namespace']
    return obj, '%s/%s' % (namespace, obj['metadata']['name']), namespace


def _check_namespaces(namespaces, seen):
    """Every pod and policy lives in a declared namespace, or in default."""
    for _, subject, namespace in seen.values():
        if namespace is not None and namespace not in namespaces:
            raise SpecError(subject, 'metadata.namespace: namespace %r is not declared '
                            '(declared: %s)' % (namespace, ', '.join(sorted(namespaces))))


def load(paths):
    """Read and validate every manifest under paths; return Manifests.

    The set is checked as a whole (duplicates, namespaces), so a refusal
    comes before anything is started.
    """
    found, seen = Manifests(), {}  # (kind, identity) -> (location, subject, namespace)
    for path, location, raw in _documents(_files(paths)):
        kind = _kind(raw, location)
        subject = _subject(path, location, kind, raw)
        obj, identity, namespace = _read(kind, raw, subject)
        if (kind, identity) in seen:
            raise SpecError(subject, 'metadata.name: %s %s is also declared in %s'
                            % (kind, identity, seen[kind, identity][0]))
        seen[kind, identity] = (location, subject, namespace)
        if kind == 'Namespace':
            found.namespaces[identity] = obj
        else:
            (found.pods if kind == 'Pod' else found.policies).append(obj)
    found.namespaces.setdefault(
        DEFAULT_NAMESPACE, Namespace(DEFAULT_NAMESPACE, {NAME_LABEL: DEFAULT_NAMESPACE}))
    _check_namespaces(found.namespaces, seen)
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
                raise SpecError('Pod %s' % pod.key, 'spec.nodeName: %r is not a node of the '
                                'inventory (nodes: %s)' % (node, ', '.join(nodes)))
            placed[pod.key] = node
            count[node] += 1
    for pod in sorted((p for p in pods if p.key not in placed), key=lambda p: p.key):
        if not nodes:
            raise SpecError('Pod %s' % pod.key, 'no node to schedule it on (no nodes)')
        node = min(nodes, key=count.__getitem__)
        placed[pod.key] = node
        count[node] += 1
    return {pod.key: placed[pod.key] for pod in pods}
