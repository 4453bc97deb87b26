"""run_module and the Reconciler: the one contract of podnet's modules.
Check mode plans and never applies; --diff shows before, after and the
plan's lines; what the reconciler warns about reaches module.warn; a spec
error raised while building it fails the module naming its field."""
import pytest
from ansible.module_utils.podnet.core import reconcile
from ansible.module_utils.podnet.core.errors import SpecError


class Module:
    def __init__(self, check_mode=False, diff=False):
        self.check_mode, self._diff, self.warned = check_mode, diff, []

    def warn(self, text):
        self.warned.append(text)

    def fail_json(self, **result):
        raise SystemExit(dict(result, failed=True))

    def exit_json(self, **result):
        raise SystemExit(result)


class Sysctl(reconcile.Reconciler):
    subject = 'a sysctl'

    def __init__(self, have, want):
        self.have, self.want, self.done = have, want, []

    def read(self):
        return {'value': self.have}

    def plan(self, current):
        return [] if current['value'] == self.want else [
            reconcile.Action('set', 'net.x', '%s, want %s' % (current['value'], self.want))]

    def wanted(self, current):
        return {'value': self.want}

    def do_set(self, action, current):
        self.done.append(action.target)

    def result(self, current, actions):
        return {'was': current['value']}

    def warnings(self, current, result):
        return ['was %s' % result['was']] if result['was'] == 0 else []


def run(module, reconciler):
    with pytest.raises(SystemExit) as exited:
        reconcile.run_module(module, lambda m: reconciler)
    return exited.value.code


def test_a_run_applies_the_plan_and_returns_the_result():
    sysctl = Sysctl(0, 1)
    done = run(Module(), sysctl)
    assert done == {'changed': True, 'actions': [['set', 'net.x', '0, want 1']], 'diff': {}, 'was': 0}
    assert sysctl.done == ['net.x']
    assert run(Module(), Sysctl(1, 1))['changed'] is False


def test_check_mode_plans_and_diffs_without_applying():
    sysctl, module = Sysctl(0, 1), Module(check_mode=True, diff=True)
    done = run(module, sysctl)
    assert done['changed'] is True and sysctl.done == []
    assert done['diff'] == {'before': 'value: 0\n', 'after': 'value: 1\n', 'before_header': 'a sysctl (now)',
                            'after_header': 'a sysctl (wanted)', 'prepared': 'set net.x: 0, want 1\n'}


def test_warnings_reach_the_module():
    module = Module()
    run(module, Sysctl(0, 1))
    assert module.warned == ['was 0']


def test_a_spec_error_while_building_fails_naming_its_field():
    def build(module):
        raise SpecError('pods[0] (default/web)', 'containers: missing')
    with pytest.raises(SystemExit) as exited:
        reconcile.run_module(Module(), build)
    assert exited.value.code == {'failed': True, 'msg': 'pods[0] (default/web): containers: missing',
                                 'subject': 'pods[0] (default/web)'}


def test_a_broken_lock_is_replaced_first_and_said(tmp_path):
    sysctl = Sysctl(1, 1)
    sysctl.lock_dir = str(tmp_path)
    (tmp_path / 'lock').mkdir()
    done = run(Module(), sysctl)
    assert done['changed'] is True
    assert done['actions'][0][:2] == ['replace_lock', str(tmp_path / 'lock')]
