"""Container images as local commands.

podnet pulls no images: a catalog maps an image name to the ENTRYPOINT and
CMD its image config would carry, and a container's command line is built
from them with the kubelet's rules, so manifests written for a real cluster
run unchanged. A tag or digest and the implicit docker.io registry are
ignored: `docker.io/library/busybox:1.36` is `busybox`.

An image the catalog does not have, in a container that gives no command,
gets a stand-in (unless podnet_unknown_images is `refuse`): the catalog's
agnhost re-implementation in its `stand-in` mode, which answers as agnhost
netexec does on every TCP and UDP containerPort the container declares, so
a real application's network can be tested without its images. An
explicit command still runs as given, stand-in or not.
"""
import re

from ansible.module_utils.podnet.core.errors import SpecError

CATALOG = 'image catalog'
AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost'  # what stands in, from the catalog
STAND_IN, REFUSE = 'stand-in', 'refuse'  # podnet_unknown_images
STAND_IN_PROTOCOLS = ('TCP', 'UDP')  # no SCTP: the nodes' kernels have no SCTP sockets
EXPANSION = re.compile(r'\$\$|\$\(([^)]*)\)')


def image_name(reference):
    """The image reference without tag, digest and implicit docker.io parts."""
    name = reference.split('@', 1)[0]
    slash = name.rfind('/')
    if ':' in name[slash + 1:]:
        name = name[:name.rindex(':')]
    for prefix in ('docker.io/', 'index.docker.io/'):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith('library/') and name.count('/') == 1:
        name = name[len('library/'):]
    return name


def _strings(entry, key, where):
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(where, '%s: must be a list of strings' % key)
    return list(value)


def index(catalog):
    """{image name: (entrypoint, cmd)} of a catalog, each entry checked;
    two keys naming the same image are refused."""
    found, keys = {}, {}
    if not isinstance(catalog or {}, dict):
        raise SpecError(CATALOG, 'must be a mapping of image name to {entrypoint, cmd}')
    for key, entry in (catalog or {}).items():
        where = '%s: %s' % (CATALOG, key)
        if not isinstance(key, str) or not key or not isinstance(entry, dict):
            raise SpecError(where, 'must map an image name to {entrypoint, cmd}')
        name = image_name(key)
        if name in keys:
            raise SpecError(where, 'names the same image as %r (tag and docker.io ignored)'
                            % keys[name])
        keys[name] = key
        found[name] = (_strings(entry, 'entrypoint', where), _strings(entry, 'cmd', where))
    return found


def expand(text, env):
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, an
    undefined reference stays as written, and $$ is a literal $."""
    def replace(match):
        if match.group(0) == '$$':
            return '$'
        return env.get(match.group(1), match.group(0))
    return EXPANSION.sub(replace, text)


def _environment(container):
    """The container's env, each value expanded against the ones before it."""
    env = {}
    for name, value in container.env.items():
        env[name] = expand(value, env)
    return env


def _where(container, pod):
    """(subject, field prefix) naming the container in an error."""
    if pod is None:
        return 'container %s' % container.name, ''
    for key, listed in (('initContainers', pod.init_containers), ('containers', pod.containers)):
        names = [c.name for c in listed]
        if container.name in names:  # a name is unique across both lists
            return pod.subject, 'spec.%s[%d].' % (key, names.index(container.name))
    raise ValueError('container %s is not one of pod %s' % (container.name, pod.key))


def stands_in(container, catalog, unknown=STAND_IN):
    """Whether the container runs the stand-in: its image is not in the
    catalog, it gives no command, and unknown images are not refused."""
    return unknown == STAND_IN and not container.command and image_name(container.image) not in index(catalog)


def stand_in_argv(container, catalog, pod=None, init=False):
    """The stand-in's command line: agnhost's entrypoint in the catalog,
    `stand-in` and the container's TCP and UDP ports (an init container's
    stand-in completes at once: there is nothing it could wait for)."""
    subject, prefix = _where(container, pod)
    entrypoint = index(catalog).get(AGNHOST, ([], []))[0]
    if not entrypoint:
        raise SpecError(subject, '%simage: unknown image %r, and the %s has no %s entrypoint to stand in '
                        'for it (or set podnet_unknown_images: refuse)' % (prefix, container.image, CATALOG, AGNHOST))
    if init:
        return entrypoint + [STAND_IN, '--complete']
    return entrypoint + [STAND_IN] + [arg for p in container.ports if p.protocol in STAND_IN_PROTOCOLS
                                      for arg in ('--' + p.protocol.lower(), str(p.container_port))]


def resolve(container, catalog, pod=None):
    """The argv a container runs, as the kubelet builds it: command replaces
    the image's ENTRYPOINT, args its CMD, and a command without args drops
    the CMD. Only command and args get $(VAR) expansion, as in Kubernetes.

    pod, when given, names the container's pod and index in errors.
    """
    images = index(catalog)
    subject, prefix = _where(container, pod)
    env = _environment(container)
    command = [expand(a, env) for a in container.command]
    args = [expand(a, env) for a in container.args]
    name = image_name(container.image)
    if name not in images:
        if not command:
            raise SpecError(subject, '%simage: unknown image %r and no command; known '
                            'images: %s' % (prefix, container.image,
                                            ', '.join(sorted(images)) or 'none'))
        return command + args
    entrypoint, cmd = images[name]
    argv = (command or entrypoint) + (args or ([] if command else cmd))
    if not argv:
        raise SpecError(subject, '%scommand: empty: image %r has no entrypoint or cmd in '
                        'the %s and the container gives no command or args'
                        % (prefix, container.image, CATALOG))
    return argv


def resolve_pod(pod, catalog):
    """{container name: argv} of every container of a pod, init containers too."""
    return {c.name: resolve(c, catalog, pod) for c in pod.init_containers + pod.containers}
