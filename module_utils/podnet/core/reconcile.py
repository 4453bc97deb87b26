"""The one contract of every podnet module that changes a node or the lab:
a Reconciler.

    current = r.read()                # kernel and disk, read once
    actions = r.plan(current)         # pure: [Action(verb, target, reason)]
    r.apply(actions, current)         # skipped in check mode: r.do_<verb>(action, current) each

and, for --diff, r.show(current) before and r.show_wanted(current) (by
default r.show(r.wanted(current))) after. `run_module(module, build)` runs it once for all modules: it builds
the reconciler (build(module): a spec error names its field), takes the
node lock, honours check mode, renders the diff users read (before and
after as YAML, then one line per action) and turns errors into fail_json
naming the object. Check mode and diff come from the same plan as the
change, so they tell the truth.
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


class Reconciler:
    """What one module reconciles. A subclass sets `subject` (the diff's
    header, and the object a kernel error names), reads, plans and says
    what it wants, and does each verb of its plan in a method `do_<verb>`.
    `lock_dir`: the folder of the node lock (None: no lock); `absent`:
    state absent, which never creates a lock."""
    subject = 'podnet'
    lock_dir = None
    absent = False

    def read(self):
        """The current state, from the kernel and disk."""
        raise NotImplementedError

    def plan(self, current):
        """[Action] from current to what is wanted; pure."""
        raise NotImplementedError

    def wanted(self, current):
        """The state the plan leads to, as show() takes it."""
        raise NotImplementedError

    def show(self, state):
        """A state as the diff shows it."""
        return state

    def show_wanted(self, current):
        """What the diff shows after a run from current."""
        return self.show(self.wanted(current))

    def apply(self, actions, current):
        """Each action by its verb's method, in the plan's order."""
        for action in actions:
            self.do(action.verb)(action, current)

    def do(self, verb):
        return getattr(self, 'do_' + verb)

    def result(self, current, actions):
        """What the module returns besides changed, actions and diff."""
        return {}

    def warnings(self, current, result):
        """What the run says without failing (result: what result() gave)."""
        return []


def run_module(module, build):
    """Reconcile with build(module), a Reconciler, and exit.
    Check mode and state absent lock the node only if a lock file is there:
    neither may leave one on a node that had none."""
    subject = 'podnet'
    try:
        reconciler = build(module)
        subject = reconciler.subject
        actions, shown, result, warnings = _reconcile(reconciler, module.check_mode, module._diff)
        for warning in warnings:
            module.warn(warning)
    except PodnetError as exc:
        module.fail_json(msg=str(exc), subject=exc.subject)
    except kernel_errors() as exc:
        module.fail_json(msg='%s: the kernel refused a change: %s' % (subject, exc), subject=subject)
    module.exit_json(changed=bool(actions), actions=[list(a) for a in actions], diff=shown, **result)


def _reconcile(r, check_mode, with_diff):
    """(actions, diff, result, warnings) of one reconcile."""
    create = not (r.absent or check_mode)
    with node_lock(r.lock_dir, create=create) if r.lock_dir else nullcontext() as lock:
        current = r.read()
        actions = r.plan(current)
        # Only --diff shows it: a run without pays neither for it nor for YAML.
        shown = diff(r.subject, r.show(current), r.show_wanted(current), actions) if with_diff else {}
        if actions and not check_mode:
            r.apply(actions, current)
        result = r.result(current, actions)
        warnings = r.warnings(current, result)
    if lock:  # the lock was replaced before the run, as node_lock says
        healed = Action('replace_lock', os.path.join(r.lock_dir, LOCK_FILE), lock)
        actions = [healed] + actions
        if shown:
            shown['prepared'] = '%s\n' % (healed,) + shown['prepared']
    return actions, shown, result, warnings
