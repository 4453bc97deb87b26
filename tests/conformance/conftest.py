"""Conformance fixtures: the nodes of whatever inventory the suite runs
against (`--ansible-inventory`, PODNET_INVENTORY, or inventories/lab)."""
import pytest
from podnet_testlib import inventory_nodes, testinfra_host


@pytest.fixture(scope='session')
def node_vars(inventory):
    return inventory_nodes(inventory)


@pytest.fixture(scope='session')
def nodes(node_vars):
    """{name: testinfra host} of every node."""
    return {name: testinfra_host(v) for name, v in node_vars.items()}
