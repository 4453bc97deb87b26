"""Root of the test tree: options and fixtures every suite shares."""
import pytest
from podnet_testlib import inventory_path


@pytest.fixture(scope='session')
def inventory(request):
    return inventory_path(request.config)
