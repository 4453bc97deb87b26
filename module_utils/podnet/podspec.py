"""Pods as the API server would store them, read from one raw manifest.

Every field of a Pod is one of three kinds, stated in the tables below:
read (podnet honours it), ignored (it changes nothing in podnet, such as
resources or probes, and is accepted so manifests from a cluster run
unchanged), or not supported (initContainers, volumes, hostPort...): those
are accepted only with their Kubernetes default, so a pod never runs
differently from what its manifest asks without a refusal naming the field.
Any other field is refused as unknown.
"""
import re
from dataclasses import dataclass, field

from ansible.module_utils.podnet import caps, k8s
from ansible.module_utils.podnet.errors import SpecError

RESTART_POLICIES = ('Always', 'OnFailure', 'Never')
DNS_POLICIES = ('ClusterFirst', 'ClusterFirstWithHostNet', 'Default', 'None')
ENV_NAME = re.compile(r'^[-._a-zA-Z][-._a-zA-Z0-9]*$')

# (read, ignored, {not supported: accepted default}) per part of a Pod.
SPEC = (('containers', 'nodeName', 'restartPolicy', 'hostname', 'dnsPolicy', 'securityContext'),
        ('terminationGracePeriodSeconds', 'serviceAccountName', 'serviceAccount',
         'automountServiceAccountToken', 'imagePullSecrets', 'tolerations', 'priority',
         'priorityClassName', 'preemptionPolicy', 'schedulerName', 'enableServiceLinks',
         'readinessGates', 'subdomain', 'dnsConfig', 'overhead', 'resources'),
        {'initContainers': [], 'ephemeralContainers': [], 'volumes': [], 'hostNetwork': False,
         'hostPID': False, 'hostIPC': False, 'shareProcessNamespace': False, 'hostUsers': True,
         'setHostnameAsFQDN': False, 'hostAliases': [], 'nodeSelector': {}, 'affinity': {},
         'topologySpreadConstraints': [], 'runtimeClassName': None,
         'activeDeadlineSeconds': None, 'schedulingGates': [], 'resourceClaims': [],
         'os': {'name': 'linux'}})
CONTAINER = (('name', 'image', 'command', 'args', 'env', 'ports', 'workingDir', 'securityContext'),
             ('imagePullPolicy', 'resources', 'resizePolicy', 'terminationMessagePath',
              'terminationMessagePolicy', 'livenessProbe', 'readinessProbe', 'startupProbe',
              'stdin', 'stdinOnce', 'tty'),
             {'volumeMounts': [], 'volumeDevices': [], 'envFrom': [], 'lifecycle': None,
              'restartPolicy': None})
PORT = (('containerPort', 'protocol', 'name'), (), {'hostPort': None, 'hostIP': None})
ENV = (('name', 'value'), (), {'valueFrom': None})
# Processes run as root with the capabilities of caps.keeps(): identity and
# filesystem settings podnet cannot apply are refused, filters it does not
# apply (seccomp, SELinux, AppArmor) are ignored.
IDENTITY = {'runAsUser': 0, 'runAsGroup': 0, 'runAsNonRoot': False}
FILTERS = ('seccompProfile', 'seLinuxOptions', 'appArmorProfile', 'windowsOptions')
POD_SECURITY = ((), FILTERS + ('fsGroupChangePolicy', 'supplementalGroupsPolicy',
                               'seLinuxChangePolicy'),
                dict(IDENTITY, supplementalGroups=[], fsGroup=None, sysctls=[]))
CONTAINER_SECURITY = (('capabilities', 'privileged'), FILTERS + ('allowPrivilegeEscalation',),
                      dict(IDENTITY, readOnlyRootFilesystem=False, procMount='Default'))


@dataclass(frozen=True)
class ContainerPort:
    name: object  # an IANA service name, or None for an unnamed port
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
    privileged: bool = False
    cap_add: tuple = ()  # canonical names (caps.canonical), ALL allowed
    cap_drop: tuple = ()

    @property
    def capabilities(self):
        """Sorted names of the capabilities the container keeps."""
        return caps.keeps(self.privileged, self.cap_add, self.cap_drop)


@dataclass(frozen=True)
class Pod:
    """A pod as the API server would store it."""
    namespace: str
    name: str
    labels: dict
    node_name: object  # spec.nodeName, or None to let schedule() place it
    containers: list
    restart_policy: str = 'Always'  # Always | OnFailure | Never
    spec_hostname: object = None  # spec.hostname, or None for the pod's name
    source: str = ''  # the manifest file, to name it in later refusals

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)

    @property
    def hostname(self):
        return k8s.hostname(self.spec_hostname or self.name)

    @property
    def subject(self):
        return '%s: Pod %s' % (self.source, self.key) if self.source else 'Pod %s' % self.key


def _env(raw, where, subject):
    env = {}
    for i, item in enumerate(k8s.items(raw.get('env'), where + '.env', subject)):
        at = '%s.env[%d]' % (where, i)
        item = k8s.fields(item, at, subject, *ENV)
        if not isinstance(item.get('name'), str) or not ENV_NAME.match(item['name']):
            raise SpecError(subject, '%s.name: required, letters, digits, -, _ and . '
                            'not starting with a digit' % at)
        value = '' if item.get('value') is None else item['value']
        if not isinstance(value, str):
            raise SpecError(subject, '%s.value: %r must be a string (quote it)' % (at, value))
        env[item['name']] = value
    return env


def _port(raw, at, subject):
    raw = k8s.fields(raw, at, subject, *PORT)
    number = k8s.port_number(raw.get('containerPort'), at + '.containerPort', subject)
    name = raw.get('name')
    if name is not None:
        k8s.port_name(name, at + '.name', subject)
    return ContainerPort(name, number, k8s.protocol(raw.get('protocol'), at + '.protocol', subject))


def _capability_names(raw, at, subject):
    names = []
    for i, text in enumerate(k8s.items(raw, at, subject, str)):
        if caps.canonical(text) is None:
            raise SpecError(subject, '%s[%d]: %r is not a Linux capability (such as NET_ADMIN '
                            'or CAP_NET_ADMIN) nor ALL' % (at, i, text))
        names.append(caps.canonical(text))
    return tuple(names)


def _security(raw, at, subject):
    """{privileged, cap_add, cap_drop} of a container's securityContext."""
    raw = k8s.fields(raw, at, subject, *CONTAINER_SECURITY)
    privileged = raw.get('privileged')
    if privileged is not None and not isinstance(privileged, bool):
        raise SpecError(subject, '%s.privileged: %r must be true or false' % (at, privileged))
    capabilities = k8s.fields(raw.get('capabilities'), at + '.capabilities', subject,
                              ('add', 'drop'))
    return {'privileged': bool(privileged),
            'cap_add': _capability_names(capabilities.get('add'), at + '.capabilities.add',
                                         subject),
            'cap_drop': _capability_names(capabilities.get('drop'), at + '.capabilities.drop',
                                          subject)}


def _container(raw, where, subject):
    raw = k8s.fields(raw, where, subject, *CONTAINER)
    image = raw.get('image')
    if not isinstance(image, str) or not image.strip() or image != image.strip():
        raise SpecError(subject, '%s.image: %r must be a non-empty string without '
                        'surrounding spaces' % (where, image))
    working_dir = raw.get('workingDir')
    if working_dir is not None and not isinstance(working_dir, str):
        raise SpecError(subject, '%s.workingDir: must be a string' % where)
    ports = k8s.items(raw.get('ports'), where + '.ports', subject)
    return Container(
        name=k8s.name(raw.get('name'), where + '.name', subject, label=True), image=image,
        command=k8s.items(raw.get('command'), where + '.command', subject, str),
        args=k8s.items(raw.get('args'), where + '.args', subject, str),
        env=_env(raw, where, subject), working_dir=working_dir or None,
        ports=[_port(p, '%s.ports[%d]' % (where, i), subject) for i, p in enumerate(ports)],
        **_security(raw.get('securityContext'), where + '.securityContext', subject))


def _check_unique(subject, named):
    """named: [(field, name)]; a name given twice is refused at its second field."""
    first = {}
    for where, name in named:
        if name in first:
            raise SpecError(subject, '%s: %r is already used by %s' % (where, name, first[name]))
        first[name] = where


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


def _choice(spec, key, choices, subject):
    """spec[key] (its first choice, the default, when not given)."""
    value = spec.get(key)
    if value is None:
        return choices[0]
    if value not in choices:
        raise SpecError(subject, 'spec.%s: %r must be one of %s'
                        % (key, value, ', '.join(choices)))
    return value


def _check_spec(spec, subject):
    """The parts of a spec podnet validates but does not keep: there is no
    cluster DNS (dnsPolicy) and processes run as root (securityContext)."""
    if _choice(spec, 'dnsPolicy', DNS_POLICIES, subject) == 'None' and not spec.get('dnsConfig'):
        raise SpecError(subject, 'spec.dnsConfig: required when dnsPolicy is None')
    k8s.fields(spec.get('securityContext'), 'spec.securityContext', subject, *POD_SECURITY)


def parse_pod(raw, subject, source=''):
    """A validated, defaulted Pod from a raw manifest dict; source is the
    file it came from."""
    meta = k8s.section(raw, 'metadata', subject)
    namespace = k8s.namespace_of(meta, subject)
    name = k8s.name(meta.get('name'), 'metadata.name', subject)
    labels = k8s.labels(meta.get('labels'), 'metadata.labels', subject)
    spec = k8s.fields(k8s.section(raw, 'spec', subject), 'spec', subject, *SPEC)
    node_name = spec.get('nodeName')
    if node_name is not None:
        k8s.name(node_name, 'spec.nodeName', subject)
    hostname = spec.get('hostname') or None
    if hostname is not None:
        k8s.name(hostname, 'spec.hostname', subject, label=True)
    _check_spec(spec, subject)
    return Pod(namespace, name, labels, node_name, _containers(spec, subject),
               _choice(spec, 'restartPolicy', RESTART_POLICIES, subject), hostname, source)
