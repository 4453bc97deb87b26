"""The Python lab nodes run Ansible modules with: the project venv's Python,
with a cache of the code it compiles from the module's zip.

Ansible sends a module as one zip (AnsiballZ) that Python imports from with
zipimport, which, unlike an ordinary import, keeps no compiled code: every
module run compiled ansible.module_utils.basic and podnet's module_utils
again, 40% of a module run and the largest cost of a converge at scale.
Here each source compiled is kept once, by its content's hash, under the
node's own home (not visible to pods), and loaded from there next time; a
code object carries the path of the zip it runs from. Nothing else changes:
the same wrapper runs the same module code.

usage (through podnet-module-python, the lab's ansible_python_interpreter):
  .venv/bin/python podnet_module_python.py [AnsiballZ_module.py]   (else the wrapper on stdin)
"""
import hashlib
import importlib.util
import marshal
import os
import sys
import types
import zipimport

CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'podnet-modules')


def _relocated(code, filename):
    """code, and every code object within it, as compiled from filename."""
    consts = tuple(_relocated(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _cached_compile(compile_source):
    def compile_or_load(pathname, source):
        key = hashlib.sha256(importlib.util.MAGIC_NUMBER + b'%d' % sys.flags.optimize
                             + source).hexdigest()
        path = os.path.join(CACHE, key)
        try:
            with open(path, 'rb') as f:
                code = marshal.load(f)
            if isinstance(code, types.CodeType):
                return _relocated(code, pathname)
        except (OSError, EOFError, ValueError, TypeError):
            pass  # not there, or not code: compiled again and written anew
        code = compile_source(pathname, source)
        try:
            os.makedirs(CACHE, mode=0o700, exist_ok=True)
            aside = '%s.%d' % (path, os.getpid())
            with open(aside, 'wb') as f:
                marshal.dump(code, f)
            os.replace(aside, path)
        except OSError:
            pass  # no cache: the module still runs, as it would without one
        return code
    return compile_or_load


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == here:  # the module's imports must not find this folder
        del sys.path[0]
    if hasattr(zipimport, '_compile_source'):
        zipimport._compile_source = _cached_compile(zipimport._compile_source)
    if len(sys.argv) > 1:  # a wrapper file (no pipelining): it becomes argv[0]
        sys.argv = sys.argv[1:]
        with open(sys.argv[0], 'rb') as f:
            wrapper = f.read()
        name = sys.argv[0]
    else:
        sys.argv = ['']
        wrapper, name = sys.stdin.buffer.read(), '<stdin>'
    main_module = types.ModuleType('__main__')
    if name != '<stdin>':
        main_module.__file__ = name
    sys.modules['__main__'] = main_module
    exec(compile(wrapper, name, 'exec'), main_module.__dict__)


if __name__ == '__main__':
    main()
