"""Image catalog: lookup without tag or registry, the kubelet's command and
args rules, and refusals naming pod, container and field."""
import pytest
from ansible.module_utils.podnet.plan import images
from ansible.module_utils.podnet.core.errors import SpecError
from ansible.module_utils.podnet.plan.podspec import Container, Pod

CATALOG = {
    'kennethreitz/httpbin': {'entrypoint': [], 'cmd': ['gunicorn', '-b', '0.0.0.0:80',
                                                        'httpbin:app']},
    'registry.k8s.io/e2e-test-images/agnhost': {'entrypoint': ['/agnhost'], 'cmd': ['pause']},
    'busybox': {'cmd': ['sh']},
    'scratch': {},
}


def container(image, command=(), args=(), env=None, name='c'):
    return Container(name, image, list(command), list(args), dict(env or {}))


def pod(*containers):
    return Pod('default', 'web', {}, None, list(containers), '')


def refusal(*args, **kwargs):
    with pytest.raises(SpecError) as info:
        images.resolve(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize('reference, name', [
    ('busybox', 'busybox'),
    ('busybox:1.36', 'busybox'),
    ('library/busybox', 'busybox'),
    ('docker.io/library/busybox:1.36', 'busybox'),
    ('docker.io/busybox', 'busybox'),
    ('index.docker.io/library/busybox', 'busybox'),
    ('kennethreitz/httpbin:latest', 'kennethreitz/httpbin'),
    ('docker.io/kennethreitz/httpbin', 'kennethreitz/httpbin'),
    ('registry.k8s.io/e2e-test-images/agnhost:2.47', 'registry.k8s.io/e2e-test-images/agnhost'),
    ('busybox@sha256:' + 'a' * 64, 'busybox'),
    ('busybox:1.36@sha256:' + 'a' * 64, 'busybox'),
    ('localhost:5000/tools/curl', 'localhost:5000/tools/curl'),
    ('localhost:5000/tools/curl:8', 'localhost:5000/tools/curl'),
    ('quay.io/library/x', 'quay.io/library/x'),
])
def test_image_name_ignores_tag_digest_and_docker_io(reference, name):
    assert images.image_name(reference) == name


def test_image_defaults_are_entrypoint_then_cmd():
    assert images.resolve(container('kennethreitz/httpbin:latest'), CATALOG) == [
        'gunicorn', '-b', '0.0.0.0:80', 'httpbin:app']
    assert images.resolve(container('registry.k8s.io/e2e-test-images/agnhost:2.47'),
                          CATALOG) == ['/agnhost', 'pause']


def test_args_replace_cmd_and_keep_entrypoint():
    agnhost = container('registry.k8s.io/e2e-test-images/agnhost:2.47',
                        args=['netexec', '--http-port=8080'])
    assert images.resolve(agnhost, CATALOG) == ['/agnhost', 'netexec', '--http-port=8080']


def test_command_replaces_entrypoint_and_drops_cmd():
    assert images.resolve(container('docker.io/library/busybox', command=['sleep']),
                          CATALOG) == ['sleep']
    assert images.resolve(container('registry.k8s.io/e2e-test-images/agnhost', ['/bin/true']),
                          CATALOG) == ['/bin/true']


def test_command_and_args_replace_both():
    busybox = container('busybox:1.36', command=['sleep'], args=['365d'])
    assert images.resolve(busybox, CATALOG) == ['sleep', '365d']


def test_unknown_image_runs_its_command_and_args():
    assert images.resolve(container('example.com/tool:1', ['sleep'], ['1']), CATALOG) == [
        'sleep', '1']
    assert images.resolve(container('example.com/tool', ['sleep']), None) == ['sleep']


def test_unknown_image_without_command_is_refused_naming_pod_and_field():
    second = container('nginx:1.25', args=['-g', 'daemon off;'], name='web')
    message = refusal(second, CATALOG, pod(container('busybox', name='first'), second))
    assert message == ("Pod default/web: spec.containers[1].image: unknown image 'nginx:1.25' "
                       'and no command; known images: busybox, kennethreitz/httpbin, '
                       'registry.k8s.io/e2e-test-images/agnhost, scratch')


def test_unknown_image_without_pod_names_the_container_and_empty_catalog():
    assert refusal(container('nginx', name='web'), {}) == (
        "container web: image: unknown image 'nginx' and no command; known images: none")


def test_empty_argv_is_refused():
    message = refusal(container('scratch:latest'), CATALOG, pod(container('scratch:latest')))
    assert message.startswith("Pod default/web: spec.containers[0].command: empty: image "
                              "'scratch:latest' has no entrypoint or cmd")
    assert images.resolve(container('scratch', args=['x']), CATALOG) == ['x']


def test_empty_command_list_counts_as_not_given():
    assert images.resolve(container('busybox', command=[]), CATALOG) == ['sh']


def test_command_and_args_expand_env_references_as_kubernetes():
    env = {'PORT': '8080', 'ADDR': '0.0.0.0:$(PORT)', 'UNUSED': 'x'}
    c = container('registry.k8s.io/e2e-test-images/agnhost', args=[
        'netexec', '--http-port=$(PORT)', '--addr=$(ADDR)', '$(MISSING)', '$$(PORT)', 'a$b'],
        env=env)
    assert images.resolve(c, CATALOG) == [
        '/agnhost', 'netexec', '--http-port=8080', '--addr=0.0.0.0:8080', '$(MISSING)',
        '$(PORT)', 'a$b']


def test_image_defaults_are_not_expanded():
    catalog = {'tool': {'entrypoint': ['echo'], 'cmd': ['$(HOME)']}}
    assert images.resolve(container('tool', env={'HOME': '/root'}), catalog) == [
        'echo', '$(HOME)']


def test_catalog_keys_are_normalised_like_references():
    catalog = {'docker.io/library/alpine:3.19': {'entrypoint': ['/bin/sh']}}
    assert images.resolve(container('alpine'), catalog) == ['/bin/sh']


@pytest.mark.parametrize('catalog, subject, words', [
    ({'busybox': {}, 'docker.io/busybox:1': {}}, 'image catalog: docker.io/busybox:1',
     "names the same image as 'busybox'"),
    ({'busybox': {'cmd': 'sh'}}, 'image catalog: busybox', 'cmd: must be a list of strings'),
    ({'busybox': {'entrypoint': [1]}}, 'image catalog: busybox',
     'entrypoint: must be a list of strings'),
    ({'busybox': ['sh']}, 'image catalog: busybox', 'must map an image name'),
    (['busybox'], 'image catalog', 'must be a mapping'),
])
def test_invalid_catalog_is_refused_naming_the_entry(catalog, subject, words):
    message = refusal(container('busybox', ['true']), catalog)
    assert message.startswith(subject + ': ') and words in message


def test_resolve_pod_gives_every_container():
    web = pod(container('kennethreitz/httpbin', name='httpbin'),
              container('busybox', ['sleep'], ['365d'], name='curl'))
    assert images.resolve_pod(web, CATALOG) == {
        'httpbin': ['gunicorn', '-b', '0.0.0.0:80', 'httpbin:app'], 'curl': ['sleep', '365d']}


def test_resolve_returns_a_new_list_each_time():
    c = container('busybox')
    argv = images.resolve(c, CATALOG)
    argv.append('junk')
    assert images.resolve(c, CATALOG) == ['sh'] and CATALOG['busybox']['cmd'] == ['sh']
