"""The folders of module_utils/podnet depend one way (docs/layout.md): a
package imports only packages of a lower layer, or of its own."""
import re

import pytest
from podnet_testlib import ROOT

PACKAGES = ROOT / 'module_utils' / 'podnet'
LAYER = {'core': 0, 'kernel': 1, 'cni': 1, 'policy': 2, 'node': 2, 'services': 2, 'pods': 3,
         'plan': 4, 'explain': 4, 'lab': 4, 'cniplugin': 4}
IMPORT = re.compile(r'ansible\.module_utils\.podnet\.(\w+)')


def imported(package):
    """{other package: [file, ...]} of what package's files import."""
    found = {}
    for path in sorted((PACKAGES / package).glob('*.py')):
        for other in set(IMPORT.findall(path.read_text())) - {package}:
            found.setdefault(other, []).append(path.name)
    return found


def test_every_package_has_a_layer():
    assert sorted(p.name for p in PACKAGES.iterdir() if (p / '__init__.py').exists()) == sorted(LAYER)


@pytest.mark.parametrize('package', sorted(LAYER))
def test_a_package_imports_only_lower_layers(package):
    upward = {other: files for other, files in imported(package).items() if LAYER[other] >= LAYER[package]}
    assert upward == {}, '%s imports a layer not below it' % package
