"""Root of the test tree: options, fixtures and hooks every suite shares."""
import pytest
from podnet_testlib import inventory_path, skipped_as_root


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A root-only test that skips while the run is root fails instead."""
    outcome = yield
    report = outcome.get_result()
    reason = skipped_as_root(report)
    if reason:
        report.outcome = 'failed'
        report.longrepr = 'skipped while running as root: %s' % reason


@pytest.fixture(scope='session')
def inventory(request):
    return inventory_path(request.config)
