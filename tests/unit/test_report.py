"""The conformance report as data and as HTML (tests/conformance/report.py)."""
import json

from conformance.report import COMMANDS_KEPT, Grid, Report, render, write_index

G1_DOC = """G1: every pod has its own IP.

Checked from every node."""


def report_of(*checks):
    """A Report holding checks given as (module, module doc, test name, doc)."""
    report = Report('lab', '/inventories/lab')
    for module, module_doc, name, doc in checks:
        report.add(module, module_doc, '%s::%s' % (module, name), name.split('[')[0], doc)
    return report


def test_guarantees_come_first_in_their_order_then_the_rest():
    report = report_of(('test_walk.py', 'The walkthrough.', 'test_a', ''),
                       ('test_g7.py', 'G7: MTU.', 'test_b', ''),
                       ('test_g1.py', G1_DOC, 'test_c', ''))
    sections = report.ordered_sections()
    assert [s.ident for s in sections] == ['G1', 'G7', '']
    assert sections[0].title == 'G1: every pod has its own IP.'
    assert sections[0].statement == 'Checked from every node.'


def test_a_check_outcome_merges_its_phases():
    report = report_of(('test_g1.py', G1_DOC, 'test_ok', ''), ('test_g1.py', G1_DOC, 'test_setup', ''),
                       ('test_g1.py', G1_DOC, 'test_skip', ''), ('test_g1.py', G1_DOC, 'test_bad', ''))
    phases = {'test_ok': [('setup', 'passed'), ('call', 'passed'), ('teardown', 'passed')],
              'test_setup': [('setup', 'failed'), ('teardown', 'passed')],
              'test_skip': [('setup', 'skipped'), ('teardown', 'passed')],
              'test_bad': [('setup', 'passed'), ('call', 'failed'), ('teardown', 'passed')]}
    for name, runs in phases.items():
        for when, outcome in runs:
            report.phase('test_g1.py::' + name, when, outcome, 0.5, 'why ' + name)
    outcomes = {c.name: (c.outcome, c.message) for c in report.checks.values()}
    assert outcomes == {'ok': ('passed', ''), 'setup': ('error', 'why test_setup'),
                        'skip': ('skipped', 'why test_skip'), 'bad': ('failed', 'why test_bad')}
    assert report.sections['test_g1.py'].outcome == 'failed'
    assert report.checks['test_g1.py::test_ok'].duration == 1.5


def test_a_teardown_failure_after_a_failed_call_keeps_both_tracebacks():
    report = report_of(('test_g1.py', G1_DOC, 'test_a', ''))
    report.phase('test_g1.py::test_a', 'call', 'failed', 0.1, 'AssertionError: call')
    report.phase('test_g1.py::test_a', 'teardown', 'failed', 0.1, 'OSError: teardown')
    check = report.checks['test_g1.py::test_a']
    assert check.outcome == 'failed'
    assert check.message == 'AssertionError: call\n\n[teardown]\nOSError: teardown'


def test_a_module_that_cannot_be_collected_is_an_error():
    report = Report('lab', '/inventories/lab')
    report.broken('test_g3.py', 'SyntaxError: invalid syntax')
    [section] = report.ordered_sections()
    assert section.outcome == 'error' and 'SyntaxError' in render(report)


def test_evidence_goes_to_the_running_check_and_is_bounded():
    report = report_of(('test_g1.py', G1_DOC, 'test_a', ''))
    report.command('node1', 'before any check', 0, 'x')
    report.begin('test_g1.py::test_a')
    for n in range(COMMANDS_KEPT + 3):
        report.command('node1', 'ping %d' % n, 0, 'y' * 5000)
    report.end()
    check = report.checks['test_g1.py::test_a']
    assert len(check.commands) == COMMANDS_KEPT and check.commands_dropped == 3
    assert check.commands[0].command == 'ping 0' and '[3800 more characters]' in check.commands[0].output


def test_html_escapes_what_the_nodes_answer():
    report = report_of(('test_g1.py', G1_DOC, 'test_a', 'Reads <eth0>.'))
    report.begin('test_g1.py::test_a')
    report.command('node1', 'cat /x', 0, '<script>alert(1)</script>')
    report.phase('test_g1.py::test_a', 'call', 'passed', 0.1, '')
    page = render(report)
    assert '<script>' not in page and '&lt;script&gt;alert(1)&lt;/script&gt;' in page
    assert 'Reads &lt;eth0&gt;.' in page


def test_a_grid_draws_each_cell_with_its_reason_and_flags_a_wrong_one():
    pods = ['x/a', 'x/b']
    grid = Grid('TCP/80', pods, {'x/a': {'x/a': True, 'x/b': False}, 'x/b': {'x/a': True, 'x/b': None}},
                {'x/a': {'x/b': 'ingress of x/b: isolated by x/deny, no rule allows'}},
                expected={'x/a': {'x/a': True, 'x/b': True}, 'x/b': {'x/a': True, 'x/b': None}})
    report = report_of(('test_g5.py', 'G5: policy.', 'test_a', ''))
    report.begin('test_g5.py::test_a')
    report.grid(grid)
    report.phase('test_g5.py::test_a', 'call', 'failed', 0.1, 'AssertionError')
    page = render(report)
    assert page.count('<td class="allowed"') == 2 and page.count('<td class="undecided"') == 1
    assert '<td class="denied wrong" title="x/a \u2192 x/b: denied: ingress of x/b: isolated by x/deny, ' \
           'no rule allows (expected otherwise)">!</td>' in page
    assert '<li>ingress: isolated by x/deny, no rule allows: x/a\u2192x/b</li>' in page


def test_checks_not_run_are_named_with_why():
    report = report_of(('test_g5.py', 'G5: policy.', 'test_case[deny-all]', ''))
    report.deselected = "deselected by -k 'not network_policy'"
    page = render(report)
    assert "Not run here (deselected by -k &#x27;not network_policy&#x27;): case [deny-all]." in page
    assert '1 not run (deselected by -k' in page


def test_the_index_lists_every_report_folder(tmp_path):
    for name, outcome in (('default', 'passed'), ('netpol', 'failed')):
        report = report_of(('test_g1.py', G1_DOC, 'test_a', ''))
        report.name = name
        report.phase('test_g1.py::test_a', 'call', outcome, 0.1, '')
        report.write(tmp_path / name)
    write_index(tmp_path)
    index = (tmp_path / 'index.html').read_text()
    assert 'href="default/conformance.html"' in index and 'href="netpol/conformance.html"' in index
    assert json.loads((tmp_path / 'netpol' / 'summary.json').read_text())['guarantees'] == {'G1': 'failed'}
