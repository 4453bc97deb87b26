"""How podnet-cni's Python starts: the shim's direct call and the resident
server (server.spawn) both run this file as a script,

    python -I -S <folder>/podnet/cniplugin/launch.py direct|serve

which makes podnet's package importable from the folder it is in, by the
name its code imports it by, with the standard library only (no Ansible,
no site-packages), then hands over to server.py.

Why the name is a constant here and not read from the folders: it is the
code's, not the install's. The tree's code imports podnet under
`ansible.module_utils`; bin/build-collection rewrites every such import of
the collection's code, this constant with them, to the collection's name.
The files may then be anywhere: the tree, a collection's
plugins/module_utils, a VM's /usr/lib/podnet/module_utils (roles/cni).
"""
import importlib
import os
import sys
import types

PODNET = 'ansible.module_utils.podnet'
VERBS = ('direct', 'serve')


def importable(package, folder):
    """Make the dotted name `package` a package whose modules are in
    `folder`: each name above it an empty package, as Ansible's own
    loaders make `ansible.module_utils` of a module's payload."""
    parts = package.split('.')
    for depth in range(1, len(parts) + 1):
        name = '.'.join(parts[:depth])
        module = sys.modules[name] = types.ModuleType(name)
        module.__path__ = [folder] if depth == len(parts) else []


def main(argv):
    if len(argv) != 2 or argv[1] not in VERBS:
        sys.stderr.write('usage: python -I -S %s %s\n' % (argv[0], '|'.join(VERBS)))
        return 2
    podnet = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    importable(PODNET.rpartition('.')[0], os.path.dirname(podnet))
    server = importlib.import_module(PODNET + '.cniplugin.server')
    if argv[1] == 'serve':
        server.serve()
        return 0
    return server.direct()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
