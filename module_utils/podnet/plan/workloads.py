"""Workloads: the objects that make pods, played as the controllers of
kube-controller-manager would play them once, so that a user's Deployments,
StatefulSets and the like come up without a control plane.

Each workload gives the pods it would keep running, each named as its
controller names them, but deterministically (the same manifests give the
same pods, so a converge is idempotent):
- Deployment: `<name>-<pod-template-hash>-<suffix>`. The hash is of the
  pod template: a changed template gives new pods, which replace the old.
- ReplicaSet: `<name>-<suffix>`.
- StatefulSet: `<name>-0` to `<name>-<replicas - 1>`, each with its own
  name as hostname and the StatefulSet's serviceName as subdomain.
- DaemonSet: one pod per node, pinned to it (spec.nodeName).
- Job: `<name>-<suffix>` for each completion, with the template's
  restartPolicy (OnFailure or Never): it runs to completion.
Suffixes use the alphabet Kubernetes names pods with. The pods carry the
template's labels and the labels their controller adds.
The API server's rules for the fields read here are applied: a selector
that does not match the template's labels, negative replicas or a
restartPolicy the kind forbids are refused, naming the object and field.
"""
import copy
import hashlib
import json
from dataclasses import dataclass

from ansible.module_utils.podnet.core import k8s, names
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.policy import netpol

KINDS = {'Deployment': 'apps/v1', 'ReplicaSet': 'apps/v1', 'StatefulSet': 'apps/v1',
         'DaemonSet': 'apps/v1', 'Job': 'batch/v1'}
# What a kind's template may ask of restartPolicy (the first is its default).
RESTART = {'Job': ('OnFailure', 'Never')}
ALWAYS = ('Always',)
ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'  # apimachinery's rand.SafeEncodeString: no vowels, no 0/1/3
SUFFIX = 5
# spec fields per kind: read, and ignored (they shape rollouts, history or
# scheduling podnet does not model, and change none of its pods).
SPEC = {
    'Deployment': (('replicas', 'selector', 'template'),
                   ('strategy', 'minReadySeconds', 'revisionHistoryLimit', 'paused', 'progressDeadlineSeconds')),
    'ReplicaSet': (('replicas', 'selector', 'template'), ('minReadySeconds',)),
    'StatefulSet': (('replicas', 'selector', 'template', 'serviceName'),
                    ('podManagementPolicy', 'updateStrategy', 'revisionHistoryLimit', 'minReadySeconds',
                     'volumeClaimTemplates', 'persistentVolumeClaimRetentionPolicy', 'ordinals')),
    'DaemonSet': (('selector', 'template'), ('updateStrategy', 'minReadySeconds', 'revisionHistoryLimit')),
    'Job': (('completions', 'parallelism', 'selector', 'template', 'manualSelector'),
            ('backoffLimit', 'backoffLimitPerIndex', 'maxFailedIndexes', 'activeDeadlineSeconds',
             'ttlSecondsAfterFinished', 'completionMode', 'suspend', 'podFailurePolicy',
             'podReplacementPolicy', 'successPolicy', 'managedBy')),
}


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int         # pods it keeps (DaemonSet: one per node, whatever this says)
    template: dict        # the pod template: metadata (labels) and spec, as written
    service_name: object  # StatefulSet: spec.serviceName, the pods' subdomain
    subject: str          # `file: Kind ns/name`, for refusals

    @property
    def key(self):
        return '%s/%s' % (self.namespace, self.name)


def parse(kind, raw, subject):
    """A validated Workload from a raw manifest."""
    meta = k8s.section(raw, 'metadata', subject)
    name = k8s.name(meta.get('name'), 'metadata.name', subject)
    k8s.labels(meta.get('labels'), 'metadata.labels', subject)
    spec = k8s.fields(k8s.section(raw, 'spec', subject), 'spec', subject, *SPEC[kind])
    template = k8s.fields(spec.get('template'), 'spec.template', subject, ('metadata', 'spec'))
    if not template.get('spec'):
        raise SpecError(subject, 'spec.template.spec: required, must be a mapping')
    labels = k8s.labels(k8s.fields(template.get('metadata'), 'spec.template.metadata', subject,
                                   ('labels',), ('annotations', 'name', 'namespace', 'generateName',
                                                 'finalizers', 'ownerReferences'))
                        .get('labels'), 'spec.template.metadata.labels', subject)
    _check_selector(kind, spec, labels, subject)
    _check_restart(kind, template['spec'], subject)
    service = spec.get('serviceName') or None
    if service is not None:
        k8s.name(service, 'spec.serviceName', subject, label=True)
    return Workload(kind, k8s.namespace_of(meta, subject), name, _replicas(kind, spec, subject),
                    template, service, subject)


def _check_selector(kind, spec, labels, subject):
    """apps/v1 requires a selector that matches the template's labels; a Job
    makes its own unless manualSelector says the manifest's is meant."""
    if kind == 'Job' and not spec.get('manualSelector'):
        if spec.get('selector') is not None:
            raise SpecError(subject, 'spec.selector: set by the Job itself unless spec.manualSelector is true')
        return
    if spec.get('selector') is None:
        raise SpecError(subject, 'spec.selector: required')
    selector = netpol.parse_selector(spec['selector'], 'spec.selector', subject)
    if not selector.match_labels and not selector.match_expressions:
        raise SpecError(subject, 'spec.selector: empty selector is invalid for %s' % kind)
    if not netpol.selects(selector, labels):
        raise SpecError(subject, 'spec.template.metadata.labels: selector does not match template labels')


def _check_restart(kind, pod_spec, subject):
    allowed = RESTART.get(kind, ALWAYS)
    policy = pod_spec.get('restartPolicy')
    if kind == 'Job' and policy is None:
        raise SpecError(subject, 'spec.template.spec.restartPolicy: required for a Job (OnFailure or Never)')
    if policy is not None and policy not in allowed:
        raise SpecError(subject, 'spec.template.spec.restartPolicy: %r is not allowed for a %s (%s)'
                        % (policy, kind, ', '.join(allowed)))


def _replicas(kind, spec, subject):
    field = {'Job': 'completions', 'DaemonSet': None}.get(kind, 'replicas')
    if field is None:
        return 1
    value = spec.get(field)
    if value is None:
        return 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SpecError(subject, 'spec.%s: %r must be an integer >= 0' % (field, value))
    return value


def pods(workload, nodes):
    """The raw pods the workload keeps, as manifests of kind Pod; nodes:
    the inventory's node names (a DaemonSet's pods go one to each)."""
    base = _pod_base(workload)
    if workload.kind == 'Deployment':
        pod_hash = template_hash(workload.template)
        prefix = '%s-%s' % (workload.name, pod_hash)
        return [_pod(base, '%s-%s' % (prefix, suffix(prefix, i)), {'pod-template-hash': pod_hash})
                for i in range(workload.replicas)]
    if workload.kind == 'StatefulSet':
        return [_stateful(base, workload, i) for i in range(workload.replicas)]
    if workload.kind == 'DaemonSet':
        return [_pod(base, '%s-%s' % (workload.name, suffix(workload.name, node)), {}, node_name=node)
                for node in nodes]
    extra = {'batch.kubernetes.io/job-name': workload.name, 'job-name': workload.name} \
        if workload.kind == 'Job' else {}
    return [_pod(base, '%s-%s' % (workload.name, suffix(workload.name, i)), extra)
            for i in range(workload.replicas)]


def _pod_base(workload):
    template = workload.template
    return {'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'namespace': workload.namespace,
                         'labels': dict((template.get('metadata') or {}).get('labels') or {})},
            'spec': template['spec']}


def _pod(base, name, labels, node_name=None):
    pod = copy.deepcopy(base)
    pod['metadata'].update(name=name)
    pod['metadata']['labels'].update(labels)
    if node_name is not None:
        pod['spec']['nodeName'] = node_name
    return pod


def _stateful(base, workload, index):
    name = '%s-%d' % (workload.name, index)
    pod = _pod(base, name, {'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': str(index)})
    pod['spec']['hostname'] = name
    if workload.service_name:
        pod['spec']['subdomain'] = workload.service_name
    return pod


def template_hash(template):
    """The pod-template-hash: a hash of the template, written as the
    Deployment controller writes its own (FNV-1a 32, its decimal digits in
    the safe alphabet)."""
    digest = names.fnv1a(json.dumps(template, sort_keys=True).encode())
    return ''.join(ALPHABET[ord(c) % len(ALPHABET)] for c in str(digest))


def suffix(owner, index):
    """Five characters of the safe alphabet, the same for the same owner and index."""
    digest = hashlib.sha256(('%s/%s' % (owner, index)).encode()).digest()
    return ''.join(ALPHABET[b % len(ALPHABET)] for b in digest[:SUFFIX])
