"""Pod fields: what podnet reads, ignores or refuses, dnsPolicy, the
securityContext that sets a container's capabilities and seccomp profile,
and the resources it reads."""
import copy
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.podnet.kernel import caps
from ansible.module_utils.podnet.plan import manifests
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.plan.resources import ContainerResources

ROOT = Path(__file__).resolve().parents[2]
POD = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'web'},
       'spec': {'containers': [{'name': 'c', 'image': 'busybox',
                                'ports': [{'containerPort': 80}]}]}}


def load(tmp_path, change):
    doc = copy.deepcopy(POD)
    change(doc)
    file = tmp_path / 'pod.yaml'
    file.write_text(yaml.safe_dump(doc))
    return manifests.load([file]).pods[0]


def refusal(tmp_path, change):
    with pytest.raises(SpecError) as info:
        load(tmp_path, change)
    message = str(info.value)
    assert message.startswith('%s: Pod default/web: ' % (tmp_path / 'pod.yaml'))
    return message


def spec(**fields):
    return lambda d: d['spec'].update(fields)


def container(**fields):
    return lambda d: d['spec']['containers'][0].update(fields)


def security(**fields):
    return container(securityContext=fields)


def test_the_repository_manifests_still_load():
    for folder in (ROOT / 'manifests').iterdir():
        assert manifests.load([folder]).pods, folder


@pytest.mark.parametrize('change, words', [
    (spec(ephemeralContainers=[{'name': 'e'}]), 'spec.ephemeralContainers: not supported'),
    (spec(hostPID=True), 'spec.hostPID: not supported by podnet (only the default, false)'),
    (spec(hostIPC=True), 'spec.hostIPC: not supported'),
    (spec(hostNetwork=True), 'spec.hostNetwork: not supported'),
    (spec(nodeSelector={'disk': 'ssd'}), 'spec.nodeSelector: not supported'),
    (spec(os={'name': 'windows'}), 'spec.os: not supported'),
    (spec(contianers=[]), 'spec.contianers: unknown field (known: containers, '),
    (container(lifecycle={'postStart': {}}), 'spec.containers[0].lifecycle: not supported'),
    (container(volumeMounts=[{'name': 'v', 'mountPath': '/v'}]),
     "spec.containers[0].volumeMounts[0].name: 'v' names no volume of spec.volumes"),
    (spec(volumes=[{'name': 'v', 'emptyDir': {}}, {'name': 'v', 'emptyDir': {}}]),
     "spec.volumes[1].name: 'v' is already used"),
    (container(imagePulPolicy='Always'), 'spec.containers[0].imagePulPolicy: unknown field'),
    (container(ports=[{'containerPort': 80, 'hostPort': 8080}]),
     'spec.containers[0].ports[0].hostPort: not supported by podnet'),
    (container(ports=[{'containerPort': 80, 'hostIP': '0.0.0.0'}]),
     'spec.containers[0].ports[0].hostIP: not supported'),
    (spec(dnsPolicy='Bogus'), "spec.dnsPolicy: 'Bogus' must be one of ClusterFirst, "
     'ClusterFirstWithHostNet, Default, None'),
    (spec(dnsPolicy='None'), 'spec.dnsConfig.nameservers: must provide at least one DNS nameserver '
     'when dnsPolicy is None'),
    (spec(hostname='Web_1'), "spec.hostname: 'Web_1' is not a DNS-1123 label"),
    # Regression: accepted, and the container ran in / (runc refuses it)
    (container(workingDir='../..'), "spec.containers[0].workingDir: '../..' must be an absolute path"),
])
def test_fields_podnet_cannot_honour_are_refused_by_name(tmp_path, change, words):
    assert words in refusal(tmp_path, change)


@pytest.mark.parametrize('change', [
    spec(terminationGracePeriodSeconds=5, serviceAccountName='sa', tolerations=[],
         initContainers=[], volumes=[], hostPID=False, os={'name': 'linux'},
         automountServiceAccountToken=False, priorityClassName='high'),
    container(imagePullPolicy='IfNotPresent', resources={'limits': {'cpu': '1'}},
              livenessProbe={'httpGet': {'port': 80}}, volumeMounts=[], tty=False),
    container(ports=[{'containerPort': 80, 'hostPort': None}]),
    spec(dnsPolicy='ClusterFirst'), spec(dnsPolicy='Default'),
    spec(dnsPolicy='ClusterFirstWithHostNet'),
    spec(dnsPolicy='None', dnsConfig={'nameservers': ['1.1.1.1']}),
])
def test_harmless_fields_and_defaults_are_accepted(tmp_path, change):
    assert load(tmp_path, change).key == 'default/web'


def test_spec_hostname_replaces_the_name_as_hostname(tmp_path):
    assert load(tmp_path, spec(hostname='box')).hostname == 'box'
    assert load(tmp_path, lambda d: d['metadata'].update(name='w' * 100)).hostname == 'w' * 63


def test_a_container_without_security_context_keeps_the_runtime_default(tmp_path):
    assert load(tmp_path, lambda d: None).containers[0].capabilities == sorted(
        caps.RUNTIME_DEFAULT)


def test_capabilities_add_and_drop_are_read_with_or_without_cap_prefix(tmp_path):
    found = load(tmp_path, security(capabilities={'add': ['CAP_NET_ADMIN', 'sys_time'],
                                                  'drop': ['ALL']})).containers[0]
    assert (found.cap_add, found.cap_drop) == (('NET_ADMIN', 'SYS_TIME'), ('ALL',))
    assert found.capabilities == ['NET_ADMIN', 'SYS_TIME']


def test_privileged_keeps_every_capability(tmp_path):
    found = load(tmp_path, security(privileged=True, capabilities={'drop': ['ALL']}))
    assert found.containers[0].capabilities == sorted(caps.NAMES)


@pytest.mark.parametrize('change, words', [
    (security(capabilities={'add': ['NET_ADMINS']}),
     "securityContext.capabilities.add[0]: 'NET_ADMINS' is not a Linux capability"),
    (security(capabilities={'drop': 'ALL'}),
     'securityContext.capabilities.drop: must be a list of strings'),
    (security(capabilities={'add': [], 'keep': []}),
     'securityContext.capabilities.keep: unknown field'),
    (security(privileged='yes'), "securityContext.privileged: 'yes' must be true or false"),
    (security(runAsUser=-1), 'spec.containers[0].securityContext.runAsUser: -1 must be an integer from 0'),
    (security(runAsUser=0, runAsNonRoot=True), 'securityContext.runAsNonRoot: true, but runAsUser is 0'),
    (security(readOnlyRootFilesystem='yes'), "securityContext.readOnlyRootFilesystem: 'yes' must be true or false"),
    (security(privileged=True, allowPrivilegeEscalation=False),
     'securityContext.allowPrivilegeEscalation: cannot be false with privileged'),
    (spec(securityContext={'runAsUser': 'root'}), "spec.securityContext.runAsUser: 'root' must be an integer"),
    (spec(securityContext={'fsGroup': 2 ** 31}), 'spec.securityContext.fsGroup: 2147483648 must be an integer'),
    (spec(securityContext={'sysctls': [{'name': 'net.ipv4.ip_forward', 'value': '1'}]}),
     'spec.securityContext.sysctls: not supported'),
])
def test_security_context_refusals_name_the_field(tmp_path, change, words):
    assert words in refusal(tmp_path, change)


@pytest.mark.parametrize('change', [
    security(runAsUser=0, runAsNonRoot=False, allowPrivilegeEscalation=False,
             seLinuxOptions={'level': 's0:c1'}, appArmorProfile={'type': 'Unconfined'},
             privileged=False),
    spec(securityContext={'seLinuxOptions': {'level': 's0:c1'}, 'runAsUser': 0,
                          'appArmorProfile': {'type': 'RuntimeDefault'}}),
])
def test_security_context_filters_podnet_does_not_apply_are_ignored(tmp_path, change):
    found = load(tmp_path, change).containers[0]
    assert (found.capabilities, found.seccomp) == (sorted(caps.RUNTIME_DEFAULT), 'RuntimeDefault')


def seccomp_of(tmp_path, *changes):
    """The effective seccomp profile of each container of POD, a second
    container `d` added, after the changes."""
    def change(doc):
        doc['spec']['containers'].append({'name': 'd', 'image': 'busybox'})
        for each in changes:
            each(doc)
    return [c.seccomp for c in load(tmp_path, change).containers]


def pod_seccomp(kind):
    return spec(securityContext={'seccompProfile': {'type': kind}})


def test_a_pod_that_names_no_seccomp_profile_runs_under_runtime_default(tmp_path):
    assert seccomp_of(tmp_path) == ['RuntimeDefault', 'RuntimeDefault']


def test_the_pods_seccomp_profile_applies_to_every_container(tmp_path):
    assert seccomp_of(tmp_path, pod_seccomp('Unconfined')) == ['Unconfined', 'Unconfined']


def test_a_containers_seccomp_profile_overrides_the_pods(tmp_path):
    assert seccomp_of(tmp_path, pod_seccomp('Unconfined'),
                      security(seccompProfile={'type': 'RuntimeDefault'})) == [
        'RuntimeDefault', 'Unconfined']
    assert seccomp_of(tmp_path, pod_seccomp('RuntimeDefault'),
                      security(seccompProfile={'type': 'Unconfined'})) == [
        'Unconfined', 'RuntimeDefault']


def test_a_privileged_container_is_unconfined_whatever_it_asks(tmp_path):
    assert seccomp_of(tmp_path, pod_seccomp('RuntimeDefault'), security(
        privileged=True, seccompProfile={'type': 'RuntimeDefault'})) == [
        'Unconfined', 'RuntimeDefault']


@pytest.mark.parametrize('change, words', [
    (security(seccompProfile={'type': 'Localhost', 'localhostProfile': 'my.json'}),
     'spec.containers[0].securityContext.seccompProfile.type: Localhost is not supported '
     'by podnet'),
    (pod_seccomp('Localhost'), 'spec.securityContext.seccompProfile.type: Localhost is not '
     'supported by podnet'),
    (security(seccompProfile={'type': 'Strict'}), "spec.containers[0].securityContext."
     "seccompProfile.type: 'Strict' must be one of RuntimeDefault, Unconfined, Localhost"),
    (pod_seccomp('runtimedefault'), "spec.securityContext.seccompProfile.type: "
     "'runtimedefault' must be one of"),
    (security(seccompProfile={}), 'spec.containers[0].securityContext.seccompProfile.type: '
     'required (RuntimeDefault or Unconfined)'),
    (spec(securityContext={'seccompProfile': {'localhostProfile': 'p.json'}}),
     'spec.securityContext.seccompProfile.type: required'),
    (security(seccompProfile={'type': 'RuntimeDefault', 'localhostProfile': 'p.json'}),
     'seccompProfile.localhostProfile: can only be set when type is Localhost'),
    (security(seccompProfile={'type': 'Unconfined', 'profile': 'x'}),
     'spec.containers[0].securityContext.seccompProfile.profile: unknown field '
     '(known: type, localhostProfile)'),
    (security(seccompProfile='Unconfined'), 'securityContext.seccompProfile: must be a mapping'),
])
def test_seccomp_profiles_podnet_cannot_apply_are_refused_naming_the_field(tmp_path, change,
                                                                           words):
    assert words in refusal(tmp_path, change)


def test_a_containers_resources_are_read_and_defaulted(tmp_path):
    found = load(tmp_path, container(resources={'limits': {'memory': '128Mi', 'cpu': '500m'},
                                                'requests': {'cpu': 0.25}}))
    assert found.containers[0].resources == ContainerResources(
        memory_limit=128 << 20, cpu_limit=500, memory_request=128 << 20, cpu_request=250)
    assert found.qos_class == 'Burstable'


def test_a_container_without_resources_has_none_and_the_pod_is_best_effort(tmp_path):
    found = load(tmp_path, lambda d: None)
    assert found.containers[0].resources == ContainerResources(None, None, None, None)
    assert found.qos_class == 'BestEffort'


def test_a_pod_whose_containers_set_only_limits_is_guaranteed(tmp_path):
    limits = {'limits': {'memory': '64Mi', 'cpu': '1'}}
    assert load(tmp_path, container(resources=limits)).qos_class == 'Guaranteed'


@pytest.mark.parametrize('change, words', [
    (container(resources={'limits': {'memory': '12 GB'}}),
     "spec.containers[0].resources.limits.memory: '12 GB' is not a quantity (such as 128Mi, "
     "1G, 500m)"),
    (container(resources={'limits': {'cpu': '1'}, 'requests': {'cpu': '2'}}),
     "spec.containers[0].resources.requests.cpu: '2' must be less than or equal to cpu limit"),
    (container(resources={'limits': {'gpu': 1}}),
     'spec.containers[0].resources.limits.gpu: unknown resource'),
])
def test_resources_refusals_name_the_file_pod_and_field(tmp_path, change, words):
    assert words in refusal(tmp_path, change)


def test_pod_level_resources_stay_ignored(tmp_path):
    found = load(tmp_path, spec(resources={'limits': {'memory': 'whatever'}}))
    assert found.containers[0].resources == ContainerResources()


def test_the_identity_of_real_applications_is_honoured_not_refused(tmp_path):
    """Regression (issue 23): runAsUser other than 0, runAsNonRoot, fsGroup
    and readOnlyRootFilesystem were refused, so almost every real
    application was; now a container runs as the user and groups asked."""
    found = load(tmp_path, lambda doc: (
        doc['spec'].update(securityContext={'runAsUser': 1000, 'runAsGroup': 3000, 'fsGroup': 2000,
                                            'supplementalGroups': [4000], 'runAsNonRoot': True}),
        doc['spec']['containers'][0].update(securityContext={
            'runAsUser': 1001, 'allowPrivilegeEscalation': False, 'readOnlyRootFilesystem': True,
            'capabilities': {'drop': ['ALL']}})))
    [container] = found.containers
    assert (container.user, container.group, container.groups, container.no_new_privs) == \
        (1001, 3000, (2000, 4000), True)
    assert container.capabilities == [] and container.unset == ()


def test_run_as_non_root_without_a_user_runs_as_nobody_and_says_so(tmp_path):
    found = load(tmp_path, security(runAsNonRoot=True))
    assert found.containers[0].user == 65534
    assert found.notes == ('container %s: runs as uid 65534 (runAsNonRoot without runAsUser: no image USER '
                           'to read)' % found.containers[0].name,)


@pytest.mark.parametrize('change, words', [
    (container(command=['sleep\0', '1']), "spec.containers[0].command[0]: 'sleep\\x00' holds a NUL byte"),
    (container(args=['a', 'b\0']), 'spec.containers[0].args[1]: '),
    (container(env=[{'name': 'A', 'value': 'a\0b'}]), "spec.containers[0].env[0].value: 'a\\x00b' holds a NUL"),
])
def test_a_nul_byte_is_refused_before_any_node_execs_it(tmp_path, change, words):
    """Regression (issue 21, hostile re-run): a NUL in a command or an env
    value passed validation and failed on the node, blaming the program."""
    assert words in refusal(tmp_path, change)


def test_a_cpu_limit_beyond_what_the_kernel_takes_is_refused_naming_it(tmp_path):
    """Regression (issue 21, hostile re-run): cpu: '100000000000' passed
    and failed on the node with EINVAL naming neither pod nor field."""
    words = "spec.containers[0].resources.limits.cpu: '100000000000' is more than the kernel can give"
    assert words in refusal(tmp_path, container(resources={'limits': {'cpu': '100000000000'}}))
    assert load(tmp_path, container(resources={'limits': {'cpu': '64'}})).containers[0].resources.cpu_limit == 64000
