"""bin/grade-cni's table: read from each run's JUnit XML, a row per file
of the suite, a column per wiring, each failure with its first line."""
import importlib.machinery
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load():
    loader = importlib.machinery.SourceFileLoader('grade_cni', str(ROOT / 'bin' / 'grade-cni'))
    spec = importlib.util.spec_from_loader('grade_cni', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


JUNIT = '''<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.conformance.test_g7_mtu" name="test_mtu_is_consistent_on_every_hop">
<failure message="AssertionError: assert 1500 == 1450&#10;  where 1500 = link_mtu(...)">trace</failure></testcase>
<testcase classname="tests.conformance.test_g7_mtu" name="test_full_size_packets_cross"/>
<testcase classname="tests.conformance.test_g1_pod_ip" name="test_each_pod_ip_is_unique"/>
<testcase classname="tests.conformance.test_g6_masquerade" name="test_outside">
<skipped message="no outside host"/></testcase>
</testsuite></testsuites>'''


def test_outcomes_read_junit_by_file(tmp_path):
    grade = load()
    (tmp_path / 'junit.xml').write_text(JUNIT)
    found = grade.outcomes(tmp_path)
    assert found['test_g7_mtu'][0] == ('test_mtu_is_consistent_on_every_hop', 'failed',
                                       'AssertionError: assert 1500 == 1450')
    assert found['test_g1_pod_ip'] == [('test_each_pod_ip_is_unique', 'passed', '')]
    assert found['test_g6_masquerade'][0][1] == 'skipped'
    assert grade.outcomes(tmp_path / 'none') == {}


def test_table_has_a_column_per_wiring_and_names_each_failure(tmp_path):
    grade = load()
    (tmp_path / 'junit.xml').write_text(JUNIT)
    ptp = grade.outcomes(tmp_path)
    text = grade.table({'native': {'test_g7_mtu': [('a', 'passed', '')]}, 'ptp': ptp})
    assert text.startswith('| checks | native | ptp |\n|---|---|---|\n')
    assert '| G7 MTU | pass | FAIL 1/2 |' in text
    assert '| G6 masquerade | not run | pass (1 skipped) |' in text
    assert '- G7 MTU, ptp: `test_mtu_is_consistent_on_every_hop`: AssertionError: assert 1500 == 1450' in text


def test_the_readme_block_is_replaced_whole(tmp_path, monkeypatch):
    grade = load()
    monkeypatch.setattr(grade, 'ROOT', tmp_path)
    (tmp_path / 'README.md').write_text('a\n%s\nold\n%s\nb\n' % (grade.BEGIN, grade.END))
    grade.into_readme('new\n')
    assert (tmp_path / 'README.md').read_text() == 'a\n%s\nnew\n%s\nb\n' % (grade.BEGIN, grade.END)
