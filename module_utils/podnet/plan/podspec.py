"""Pods as the API server would store them, read from one raw manifest.

Every field of a Pod is one of three kinds, stated in the tables below:
read (podnet honours it), ignored (it changes nothing in podnet, such as
SELinux options, and is accepted so manifests from a cluster run
unchanged), or not supported (hostNetwork, hostPort...):
those are accepted only with their Kubernetes default, so a pod never runs
differently from what its manifest asks without a refusal naming the field.
Any other field is refused as unknown. Volumes, their mounts and
environment taken from elsewhere (valueFrom, envFrom) are read to be noted:
podnet sets none of them up, and each pod's notes say so (Pod.notes).
Init containers are read as containers are, less what the API server
forbids them (probes) and sidecars (restartPolicy: Always), which podnet
refuses: an init container here always runs to completion.

Among what is read: each container's cpu and memory (resources.py, as the
API server defaults them), its probes (probes.py) and its seccomp profile,
RuntimeDefault unless the manifest asks for Unconfined or the container is
privileged.
"""
import re
from dataclasses import dataclass, field

from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.kernel import caps
from ansible.module_utils.podnet.core import k8s
from ansible.module_utils.podnet.plan import poddns
from ansible.module_utils.podnet.plan import probes
from ansible.module_utils.podnet.plan.resources import ContainerResources, parse_resources, qos_class

RESTART_POLICIES = ('Always', 'OnFailure', 'Never')
SECCOMP_TYPES = ('RuntimeDefault', 'Unconfined', 'Localhost')
# The profile of a container whose manifest names none. Kubelet's own
# default is Unconfined, but podnet runs untrusted pods, so it filters them
# as a kubelet with --seccomp-default (SeccompDefault) does.
DEFAULT_SECCOMP = 'RuntimeDefault'
ENV_NAME = re.compile(r'^[-._a-zA-Z][-._a-zA-Z0-9]*$')

# (read, ignored, {not supported: accepted default}) per part of a Pod.
SPEC = (('containers', 'initContainers', 'nodeName', 'restartPolicy', 'hostname', 'dnsPolicy', 'dnsConfig', 'subdomain',
         'securityContext', 'volumes'),
        ('terminationGracePeriodSeconds', 'serviceAccountName', 'serviceAccount',
         'automountServiceAccountToken', 'imagePullSecrets', 'tolerations', 'priority',
         'priorityClassName', 'preemptionPolicy', 'schedulerName', 'enableServiceLinks',
         'readinessGates', 'overhead', 'resources'),
        {'ephemeralContainers': [], 'hostNetwork': False,
         'hostPID': False, 'hostIPC': False, 'shareProcessNamespace': False, 'hostUsers': True,
         'setHostnameAsFQDN': False, 'hostAliases': [], 'nodeSelector': {}, 'affinity': {},
         'topologySpreadConstraints': [], 'runtimeClassName': None,
         'activeDeadlineSeconds': None, 'schedulingGates': [], 'resourceClaims': [],
         'os': {'name': 'linux'}})
CONTAINER = (('name', 'image', 'command', 'args', 'env', 'ports', 'workingDir', 'securityContext',
              'resources', 'volumeMounts', 'envFrom') + tuple(probes.KINDS),
             ('imagePullPolicy', 'resizePolicy', 'terminationMessagePath',
              'terminationMessagePolicy', 'stdin', 'stdinOnce', 'tty'),
             {'volumeDevices': [], 'lifecycle': None,
              'restartPolicy': None})
PORT = (('containerPort', 'protocol', 'name'), (), {'hostPort': None, 'hostIP': None})
ENV = (('name', 'value', 'valueFrom'),)
MOUNT = (('name', 'mountPath'), ('readOnly', 'subPath', 'subPathExpr', 'mountPropagation', 'recursiveReadOnly'))
# The volume every pod of a real cluster has, which the kubelet injects: the
# service account's token, the cluster's CA and the namespace. Nothing a
# network test reads: its absence is not worth a note.
SERVICE_ACCOUNT_VOLUME = 'kube-api-access-'
# Processes run as the user and groups the securityContext names (root by
# default, as an image without USER), with the capabilities of caps.keeps()
# (a user other than root keeps none across exec, as with containerd) under
# the seccomp profile seccompProfile asks for (pod-wide, or per container),
# with no_new_privs when allowPrivilegeEscalation is false. The root
# filesystem is read-only whatever readOnlyRootFilesystem says, but for the
# scratch folders (/tmp, /var/tmp, /run), which stand for the emptyDirs such
# pods mount there. Filters podnet does not apply (SELinux, AppArmor) are
# ignored; what it cannot apply is refused.
IDENTITY = ('runAsUser', 'runAsGroup', 'runAsNonRoot')
FILTERS = ('seLinuxOptions', 'appArmorProfile', 'windowsOptions')
POD_SECURITY = (('seccompProfile', 'fsGroup', 'supplementalGroups') + IDENTITY,
                FILTERS + ('fsGroupChangePolicy', 'supplementalGroupsPolicy', 'seLinuxChangePolicy'),
                {'sysctls': []})
SECCOMP = (('type', 'localhostProfile'),)
CONTAINER_SECURITY = (('capabilities', 'privileged', 'seccompProfile', 'allowPrivilegeEscalation',
                       'readOnlyRootFilesystem') + IDENTITY,
                      FILTERS, {'procMount': 'Default'})
ID_MAX = 2 ** 31 - 1  # what the API server allows of a uid or gid
# runAsNonRoot with no runAsUser: the kubelet reads the image's USER, which
# podnet has not; it runs the container as nobody, and notes it.
NON_ROOT_DEFAULT = 65534


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
    seccomp_profile: str = DEFAULT_SECCOMP  # the container's, else the pod's, else the default
    resources: ContainerResources = ContainerResources()  # cpu and memory, defaulted
    unset: tuple = ()  # what it asks that podnet does not model: notes (see Pod.notes)
    user: int = 0  # the uid it runs as
    group: int = 0  # its gid
    groups: tuple = ()  # supplementary gids: the pod's supplementalGroups and fsGroup
    no_new_privs: bool = False  # allowPrivilegeEscalation: false
    probes: dict = field(default_factory=dict)  # liveness, readiness, startup: as probes.parse plans them

    @property
    def capabilities(self):
        """Sorted names of the capabilities the container keeps."""
        return caps.keeps(self.privileged, self.cap_add, self.cap_drop)

    @property
    def seccomp(self):
        """The profile it runs under, RuntimeDefault or Unconfined: a
        privileged container is Unconfined whatever it asks, as on
        Kubernetes (the runtime applies no seccomp to it)."""
        return 'Unconfined' if self.privileged else self.seccomp_profile


@dataclass(frozen=True)
class Pod:
    """A pod as the API server would store it."""
    namespace: str
    name: str
    labels: dict
    node_name: object  # spec.nodeName, or None to let schedule() place it
    containers: list
    restart_policy: str = 'Always'  # Always | OnFailure | Never (and whether a failed init container is tried again)
    spec_hostname: object = None  # spec.hostname, or None for the pod's name
    source: str = ''  # the manifest file, to name it in later refusals
    owner: str = ''  # `Kind ns/name` of the workload that made it, '' for a Pod of its own
    dns: poddns.PodDns = poddns.PodDns()  # dnsPolicy, dnsConfig and subdomain (poddns.py)
    init_containers: list = field(default_factory=list)  # [Container], run in order, each to completion

    @property
    def notes(self):
        """What the manifest asks that podnet accepts but does not model and
        whose absence may change how the pod behaves: volumes (mounted
        nowhere) and environment taken from elsewhere (not set)."""
        return tuple(note for c in self.init_containers + self.containers for note in c.unset)

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)

    @property
    def hostname(self):
        return k8s.hostname(self.spec_hostname or self.name)

    @property
    def subject(self):
        return '%s: Pod %s' % (self.source, self.key) if self.source else 'Pod %s' % self.key

    @property
    def qos_class(self):
        """Guaranteed, Burstable or BestEffort, as the kubelet classes it
        (GetPodQOS: init containers count too)."""
        return qos_class(c.resources for c in self.init_containers + self.containers)


def _env(raw, where, subject, unset):
    """{name: value} of the container's env; what comes from elsewhere
    (valueFrom, envFrom) goes to unset, as a note."""
    env = {}
    for i, item in enumerate(k8s.items(raw.get('env'), where + '.env', subject)):
        at = '%s.env[%d]' % (where, i)
        item = k8s.fields(item, at, subject, *ENV)
        if not isinstance(item.get('name'), str) or not ENV_NAME.match(item['name']):
            raise SpecError(subject, '%s.name: required, letters, digits, -, _ and . '
                            'not starting with a digit' % at)
        if item.get('valueFrom') is not None:
            unset.append('env %s (valueFrom) is not set' % item['name'])
            continue
        value = '' if item.get('value') is None else item['value']
        if not isinstance(value, str):
            raise SpecError(subject, '%s.value: %r must be a string (quote it)' % (at, value))
        _no_nul([value], at + '.value', subject)
        env[item['name']] = value
    return env


def _env_from(raw, where, subject, unset):
    for i, source in enumerate(k8s.items(raw.get('envFrom'), where + '.envFrom', subject, dict)):
        kind = next((k for k in ('configMapRef', 'secretRef') if k in source), 'source')
        unset.append('envFrom %s %s is not read' % (kind, (source.get(kind) or {}).get('name', i)))


def _mounts(raw, where, subject, volumes, unset):
    """Notes for the volumes the container mounts: podnet mounts none."""
    for i, mount in enumerate(k8s.items(raw.get('volumeMounts'), where + '.volumeMounts', subject)):
        at = '%s.volumeMounts[%d]' % (where, i)
        mount = k8s.fields(mount, at, subject, *MOUNT)
        name = mount.get('name')
        if name not in volumes:
            raise SpecError(subject, '%s.name: %r names no volume of spec.volumes' % (at, name))
        if not name.startswith(SERVICE_ACCOUNT_VOLUME):
            unset.append('volume %s (%s) is not mounted at %s' % (name, volumes[name], mount.get('mountPath')))


def _volumes(spec, subject):
    """{name: kind} of spec.volumes (emptyDir, configMap, persistentVolumeClaim...)."""
    found = {}
    for i, volume in enumerate(k8s.items(spec.get('volumes'), 'spec.volumes', subject, dict)):
        name = k8s.name(volume.get('name'), 'spec.volumes[%d].name' % i, subject, label=True)
        if name in found:
            raise SpecError(subject, 'spec.volumes[%d].name: %r is already used' % (i, name))
        found[name] = next((k for k in sorted(volume) if k != 'name'), 'no source')
    return found


def _no_nul(texts, at, subject):
    """No process takes a NUL byte in its arguments or environment: refused
    here, naming the field, not when the node execs it."""
    for i, text in enumerate(texts):
        if '\0' in text:
            raise SpecError(subject, '%s: %r holds a NUL byte, which no program can be given'
                            % (at if len(texts) == 1 else '%s[%d]' % (at, i), text))


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


def _seccomp(raw, at, subject):
    """The type a seccompProfile names, None when it is not given. podnet
    has no profiles of its own on the nodes: Localhost is refused."""
    if raw is None:
        return None
    raw = k8s.fields(raw, at, subject, *SECCOMP)
    kind = raw.get('type')
    if kind is None:
        raise SpecError(subject, '%s.type: required (RuntimeDefault or Unconfined)' % at)
    if kind not in SECCOMP_TYPES:
        raise SpecError(subject, '%s.type: %r must be one of %s'
                        % (at, kind, ', '.join(SECCOMP_TYPES)))
    if kind == 'Localhost':
        raise SpecError(subject, '%s.type: Localhost is not supported by podnet, which has no '
                        'profiles on its nodes (RuntimeDefault or Unconfined)' % at)
    if raw.get('localhostProfile') is not None:
        raise SpecError(subject, '%s.localhostProfile: can only be set when type is Localhost'
                        % at)
    return kind


def _pod_security(spec, subject):
    """What a pod's securityContext gives its containers: the seccomp
    profile of those that name none (else DEFAULT_SECCOMP), their identity
    unless they set their own, and the supplementary groups."""
    at = 'spec.securityContext'
    security = k8s.fields(spec.get('securityContext'), at, subject, *POD_SECURITY)
    groups = [_id(g, '%s.supplementalGroups[%d]' % (at, i), subject)
              for i, g in enumerate(k8s.items(security.get('supplementalGroups'), at + '.supplementalGroups',
                                              subject))]
    if security.get('fsGroup') is not None:
        groups.append(_id(security['fsGroup'], at + '.fsGroup', subject))
    return {'seccomp': _seccomp(security.get('seccompProfile'), at + '.seccompProfile', subject)
            or DEFAULT_SECCOMP, 'identity': _identity(security, at, subject),
            'groups': tuple(sorted(set(groups)))}


def _id(value, at, subject):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= ID_MAX:
        raise SpecError(subject, '%s: %r must be an integer from 0 to %d' % (at, value, ID_MAX))
    return value


def _identity(security, at, subject):
    """{runAsUser, runAsGroup, runAsNonRoot} as given (absent when not)."""
    found = {k: _id(security[k], '%s.%s' % (at, k), subject)
             for k in ('runAsUser', 'runAsGroup') if security.get(k) is not None}
    if security.get('runAsNonRoot') is not None:
        if not isinstance(security['runAsNonRoot'], bool):
            raise SpecError(subject, '%s.runAsNonRoot: %r must be true or false' % (at, security['runAsNonRoot']))
        found['runAsNonRoot'] = security['runAsNonRoot']
    return found


def _user(identity, where, subject, unset):
    """(uid, gid) a container runs as, from its and its pod's identity."""
    user = identity.get('runAsUser')
    if identity.get('runAsNonRoot'):
        if user == 0:
            raise SpecError(subject, '%s.securityContext.runAsNonRoot: true, but runAsUser is 0: the kubelet '
                            'would not start it' % where)
        if user is None:
            user = NON_ROOT_DEFAULT
            unset.append('runs as uid %d (runAsNonRoot without runAsUser: no image USER to read)' % user)
    return user or 0, identity.get('runAsGroup', 0)


def _security(raw, at, subject, pod, unset):
    """{privileged, cap_add, cap_drop, seccomp_profile, user, group, groups,
    no_new_privs} of a container's securityContext; pod: what the pod's
    gives it (_pod_security)."""
    raw = k8s.fields(raw, at, subject, *CONTAINER_SECURITY)
    flags = {k: raw.get(k) for k in ('privileged', 'allowPrivilegeEscalation', 'readOnlyRootFilesystem')}
    for key, value in flags.items():
        if value is not None and not isinstance(value, bool):
            raise SpecError(subject, '%s.%s: %r must be true or false' % (at, key, value))
    capabilities = k8s.fields(raw.get('capabilities'), at + '.capabilities', subject,
                              ('add', 'drop'))
    cap_add = _capability_names(capabilities.get('add'), at + '.capabilities.add', subject)
    if flags['allowPrivilegeEscalation'] is False and (flags['privileged'] or 'SYS_ADMIN' in cap_add):
        raise SpecError(subject, '%s.allowPrivilegeEscalation: cannot be false with privileged or '
                        'CAP_SYS_ADMIN (the API server refuses it)' % at)
    user, group = _user(dict(pod['identity'], **_identity(raw, at, subject)), at.rsplit('.', 1)[0], subject,
                        unset)
    return {'privileged': bool(flags['privileged']), 'cap_add': cap_add,
            'cap_drop': _capability_names(capabilities.get('drop'), at + '.capabilities.drop',
                                          subject),
            'seccomp_profile': _seccomp(raw.get('seccompProfile'), at + '.seccompProfile',
                                        subject) or pod['seccomp'],
            'user': user, 'group': group, 'groups': pod['groups'],
            'no_new_privs': flags['allowPrivilegeEscalation'] is False}


def _init_only(raw, where, subject):
    """What the API server refuses on an init container (probes), and a
    sidecar (restartPolicy: Always, Kubernetes 1.29+), which podnet does not
    run: its init containers all run to completion."""
    if not isinstance(raw, dict):
        return
    policy = raw.get('restartPolicy')
    if policy == 'Always':
        raise SpecError(subject, '%s.restartPolicy: Always (a sidecar container) is not supported by podnet, '
                        'whose init containers run to completion: make it one of spec.containers' % where)
    if policy is not None:
        raise SpecError(subject, "%s.restartPolicy: %r: an init container may only set Always (a sidecar)"
                        % (where, policy))
    probes.refuse_on_init(raw, where, subject)


def _container(raw, where, subject, pod, volumes, init=False):
    """A Container of spec.containers, or with init of spec.initContainers."""
    if init:
        _init_only(raw, where, subject)
    raw = k8s.fields(raw, where, subject, *CONTAINER)
    unset = []
    security = _security(raw.get('securityContext'), where + '.securityContext', subject, pod, unset)
    image = raw.get('image')
    if not isinstance(image, str) or not image.strip() or image != image.strip():
        raise SpecError(subject, '%s.image: %r must be a non-empty string without '
                        'surrounding spaces' % (where, image))
    working_dir = raw.get('workingDir')
    if working_dir is not None and not isinstance(working_dir, str):
        raise SpecError(subject, '%s.workingDir: must be a string' % where)
    if working_dir and not working_dir.startswith('/'):
        raise SpecError(subject, '%s.workingDir: %r must be an absolute path (runc refuses any other)'
                        % (where, working_dir))
    ports = [_port(p, '%s.ports[%d]' % (where, i), subject)
             for i, p in enumerate(k8s.items(raw.get('ports'), where + '.ports', subject))]
    for key in ('command', 'args'):
        _no_nul(k8s.items(raw.get(key), '%s.%s' % (where, key), subject, str), '%s.%s' % (where, key), subject)
    _no_nul([working_dir or ''], where + '.workingDir', subject)
    return Container(
        name=k8s.name(raw.get('name'), where + '.name', subject, label=True), image=image,
        command=k8s.items(raw.get('command'), where + '.command', subject, str),
        args=k8s.items(raw.get('args'), where + '.args', subject, str),
        env=_env(raw, where, subject, unset), working_dir=working_dir or None,
        ports=ports, probes=probes.parse(raw, where, subject, ports),
        resources=parse_resources(raw.get('resources'), where + '.resources', subject),
        unset=_unset(raw, where, subject, volumes, unset, 'init container' if init else 'container'), **security)


def _unset(raw, where, subject, volumes, unset, kind):
    _env_from(raw, where, subject, unset)
    _mounts(raw, where, subject, volumes, unset)
    return tuple('%s %s: %s' % (kind, raw.get('name'), note) for note in unset)


def _check_unique(subject, named):
    """named: [(field, name)]; a name given twice is refused at its second field."""
    first = {}
    for where, name in named:
        if name in first:
            raise SpecError(subject, '%s: %r is already used by %s' % (where, name, first[name]))
        first[name] = where


def _containers(spec, subject):
    """(init containers, containers) of a pod spec. A name is unique
    across both, as the API server requires."""
    raw = spec.get('containers')
    if not isinstance(raw, list) or not raw:
        raise SpecError(subject, 'spec.containers: required, at least one container')
    pod, volumes = _pod_security(spec, subject), _volumes(spec, subject)
    init = [_container(c, 'spec.initContainers[%d]' % i, subject, pod, volumes, init=True)
            for i, c in enumerate(k8s.items(spec.get('initContainers'), 'spec.initContainers', subject))]
    containers = [_container(c, 'spec.containers[%d]' % i, subject, pod, volumes)
                  for i, c in enumerate(raw)]
    _check_unique(subject, [('spec.initContainers[%d].name' % i, c.name) for i, c in enumerate(init)]
                  + [('spec.containers[%d].name' % i, c.name) for i, c in enumerate(containers)])
    _check_unique(subject, [('spec.containers[%d].ports[%d].name' % (i, j), p.name)
                            for i, c in enumerate(containers)
                            for j, p in enumerate(c.ports) if p.name is not None])
    return init, containers


def _choice(spec, key, choices, subject):
    """spec[key] (its first choice, the default, when not given)."""
    value = spec.get(key)
    if value is None:
        return choices[0]
    if value not in choices:
        raise SpecError(subject, 'spec.%s: %r must be one of %s'
                        % (key, value, ', '.join(choices)))
    return value


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
    init, containers = _containers(spec, subject)
    return Pod(namespace, name, labels, node_name, containers,
               _choice(spec, 'restartPolicy', RESTART_POLICIES, subject), hostname, source,
               dns=poddns.parse(spec, subject), init_containers=init)
