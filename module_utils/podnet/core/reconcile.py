"""The one shape of every podnet module that changes a node:

    current = read()                  # kernel and disk, read once
    actions = plan(current)           # pure: [Action(verb, target, reason)]
    apply(actions, current)           # skipped in check mode

`run_module` wraps it once for all modules: the node lock, check mode, the
diff users read (before and after as YAML, then one line per action) and
errors as fail_json naming the object. Check mode and diff come from the
same plan as the change, so they tell the truth.
"""
import collections
import json
import os
import sys
from contextlib import nullcontext

from ansible.module_utils.podnet.core.errors import PodnetError, SpecError
from ansible.module_utils.podnet.core.statefile import LOCK_FILE, node_lock


def kernel_errors():
    """OSError, and pyroute2's NetlinkError once pyroute2 is loaded: a module
    that never loads it (podnet_policy) does not pay for importing it."""
    loaded = sys.modules.get('pyroute2.netlink.exceptions')
    return (OSError, loaded.NetlinkError) if loaded else (OSError,)


# The options every node module takes (documented once, in the podnet doc
# fragment under plugins/doc_fragments).
NODE_STATE_OPTIONS = dict(state=dict(type='str', choices=['present', 'absent'], default='present'),
                          state_dir=dict(type='path', default='/var/lib/podnet'))


def from_text(option, value, kind):
    """An option given as a structure (kind: dict or list) or as its JSON
    text. The roles pass large inputs as text: Ansible templates a string for
    each node at a fraction of the cost of a structure of hundreds of pods."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError(option, 'invalid JSON text: %s' % exc) from None
    if not isinstance(value, kind):
        raise SpecError(option, 'must be a %s or its JSON text, got %s' % (kind.__name__, type(value).__name__))
    return value


class Action(collections.namedtuple('Action', 'verb target reason')):
    """One change: `verb` names the step, `target` the object, `reason` why."""

    def __str__(self):
        return '%s %s: %s' % (self.verb, self.target, self.reason)


def render(value):
    """A state as users read it in a diff: block YAML, keys sorted."""
    if value in (None, {}, [], ''):
        return ''
    try:  # imported only for a diff; a VM's Python may lack PyYAML: indented JSON then
        import yaml
    except ImportError:
        return json.dumps(value, indent=2, sort_keys=True) + '\n'
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True, width=100)


def diff(subject, before, after, actions):
    return {'before': render(before), 'after': render(after),
            'before_header': '%s (now)' % subject, 'after_header': '%s (wanted)' % subject,
            'prepared': ''.join('%s\n' % (a,) for a in actions)}


def run_module(module, subject, read, plan, apply, show, lock_dir=None, result=None,
               absent=False):
    """Reconcile and exit. show(current) and show(None) give the diff's
    before and after; result(current, actions) adds module-specific return
    values.
    absent (state absent) and check mode lock the node only if a lock file
    is there: neither may leave one on a node that had none."""
    try:
        with node_lock(lock_dir, create=not (absent or module.check_mode)) if lock_dir else nullcontext() as lock:
            current = read()
            actions = plan(current)
            healed = [Action('replace_lock', os.path.join(lock_dir, LOCK_FILE), lock)] if lock else []
            # Only --diff shows it: a run without pays neither for it nor for YAML.
            shown = diff(subject, show(current), show(None), actions) if module._diff else {}
            if actions and not module.check_mode:
                apply(actions, current)
            extra = result(current, actions) if result else {}
            actions = healed + actions  # the lock was replaced before the run, as node_lock says
            if shown:
                shown['prepared'] = ''.join('%s\n' % (a,) for a in healed) + shown['prepared']
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    except kernel_errors() as exc:
        module.fail_json(msg='%s: the kernel refused a change: %s' % (subject, exc), subject=subject)
    module.exit_json(changed=bool(actions), actions=[list(a) for a in actions], diff=shown, **extra)
