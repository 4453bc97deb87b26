# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keeps the payloads Ansible builds for podnet's modules from one playbook
run to the next.

Ansible zips each module with the module_utils it imports (AnsiballZ) the
first time a run uses it, and caches the zip only in the run's own
temporary folder. For a podnet module that is 0.09-0.14 s of parsing and
zipping in the first host's worker, while the other hosts' workers wait on
its lock: in every task of every run, about 0.6 s of a 3-node site.yml
with nothing to change. This callback copies the zips into that folder when
a playbook starts, and the new ones out when it ends, under a key that is
the digest of everything a zip is made of: the module and module_utils
folders' files (paths and contents, roles' own folders too), Ansible's
version and where it lives, and the controller's Python. Only payloads of
the configured library folders' modules are kept: a collection's module
comes from sources the key does not cover. Change one file and the key changes, so a zip
is never used with code it was not built from.

The copies live in Ansible's local temporary folder's parent
(~/.ansible/tmp/podnet-payloads/<key>), written whole (rename); keys not
used for a day are removed. PODNET_PAYLOADS=0 turns it off (bench/
everyday_bench.py measures with and without). If anything fails, Ansible builds the zips as
it always does: this only ever saves work. Needs no enabling: Ansible loads
it from callback_plugins (ansible.cfg).
"""

DOCUMENTATION = '''
name: podnet_payloads
type: aggregate
short_description: Keep the AnsiballZ payloads of podnet's modules across playbook runs.
description:
  - When a playbook starts, copies the module payloads built by an earlier run from the same code
    into this run's AnsiballZ cache; when it ends, keeps the ones this run built.
  - The cache is keyed by a digest of the module and module_utils folders, Ansible's version and
    the controller's Python, so changed code always gets new payloads.
  - C(PODNET_PAYLOADS=0) in the environment turns it off.
  - Prints nothing. Loaded without enabling, from the project's callback_plugins.
'''

import glob
import hashlib
import os
import shutil
import sys
import time

from ansible import constants as C
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.callback import CallbackBase

KEPT_FOR = 86400  # seconds a key's folder stays without a run using it
NOT_PAYLOADS = ('.lock', '-part')  # Ansible's lock files and half-written zips


def source_folders():
    """Where the modules and module_utils of a kept payload may come from:
    the configured folders, and any role's own library and module_utils."""
    folders = set(C.DEFAULT_MODULE_PATH + C.DEFAULT_MODULE_UTILS_PATH)
    for roles in C.DEFAULT_ROLES_PATH:
        for kind in ('library', 'module_utils'):
            folders.update(glob.glob(os.path.join(roles, '*', kind)))
    return sorted(folders)


def kept_module(name):
    """Whether a payload file is one this callback keeps: a module of the
    configured library folders (`ansible.legacy.<module>-...`), whose
    sources the key covers; never a collection's, which it does not."""
    module = name.split('-', 1)[0]
    return module.startswith('ansible.legacy.') and any(
        os.path.isfile(os.path.join(folder, module[len('ansible.legacy.'):] + '.py'))
        for folder in C.DEFAULT_MODULE_PATH)


def source_key():
    """The digest of what a module's payload is made of."""
    digest = hashlib.sha256(repr((ansible_version, os.path.dirname(C.__file__), sys.version)).encode())
    for folder in source_folders():
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__')
            for name in sorted(files):
                if name.endswith('.py'):
                    path = os.path.join(root, name)
                    with open(path, 'rb') as source:
                        digest.update(path.encode() + b'\0' + source.read() + b'\0')
    return digest.hexdigest()


def private(store):
    """Ansible unpickles a payload: refuse a store anyone else could write."""
    status = os.stat(store)
    if status.st_uid != os.geteuid() or status.st_mode & 0o022:
        raise ValueError('%s is not private to this user' % store)


def copy_new(source, target):
    """Copy each payload of source that target lacks, written whole."""
    os.makedirs(target, mode=0o700, exist_ok=True)
    for name in os.listdir(source):
        if name.endswith(NOT_PAYLOADS) or not kept_module(name) or os.path.exists(os.path.join(target, name)):
            continue
        part = os.path.join(target, '.%s.%d' % (name, os.getpid()))
        shutil.copyfile(os.path.join(source, name), part)
        os.rename(part, os.path.join(target, name))


def forget_unused(store, keep):
    """Remove the folders of keys no run has used for KEPT_FOR seconds."""
    for name in os.listdir(store):
        path = os.path.join(store, name)
        if name != keep and time.time() - os.path.getmtime(path) > KEPT_FOR:
            shutil.rmtree(path, ignore_errors=True)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'podnet_payloads'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept = None

    def v2_playbook_on_start(self, playbook):
        if os.environ.get('PODNET_PAYLOADS') == '0':
            return
        try:
            store = os.path.join(os.path.dirname(C.DEFAULT_LOCAL_TMP), 'podnet-payloads')
            self.kept = os.path.join(store, source_key())
            os.makedirs(store, mode=0o700, exist_ok=True)
            private(store)
            if os.path.isdir(self.kept):
                os.utime(self.kept)
                copy_new(self.kept, self.run_cache())
            forget_unused(store, os.path.basename(self.kept))
        except (OSError, ValueError) as error:
            self.kept = None
            self._display.vvv('podnet_payloads: no payloads kept: %s' % error)

    def v2_playbook_on_stats(self, stats):
        if self.kept and os.path.isdir(self.run_cache()):
            try:
                copy_new(self.run_cache(), self.kept)
            except OSError as error:
                self._display.vvv('podnet_payloads: payloads not kept: %s' % error)

    @staticmethod
    def run_cache():
        """Where Ansible caches this run's payloads (executor/module_common.py)."""
        return os.path.join(C.DEFAULT_LOCAL_TMP, 'ansiballz_cache')
