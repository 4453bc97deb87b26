"""bench/gen_pods.py writes manifests podnet reads as they are meant."""
import runpy
import sys

from ansible.module_utils.podnet.plan import manifests
from podnet_testlib import ROOT

GENERATOR = str(ROOT / 'bench' / 'gen_pods.py')


def generate(tmp_path, capsys, *args):
    argv, sys.argv = sys.argv, [GENERATOR, *args]
    try:
        runpy.run_path(GENERATOR, run_name='__main__')
    finally:
        sys.argv = argv
    path = tmp_path / 'pods.yaml'
    path.write_text(capsys.readouterr().out)
    return manifests.load([str(path)])


def test_pods_spread_by_the_scheduler(tmp_path, capsys):
    found = generate(tmp_path, capsys, '25')
    assert len(found.pods) == 25 and found.pods[0].key == 'scale/p01'
    placed = manifests.schedule(found.pods, ['node1', 'node2', 'node3'])
    assert sorted(list(placed.values()).count(n) for n in ('node1', 'node2', 'node3')) == [8, 8, 9]
    assert {c.name: c.command for c in found.pods[0].containers} == {'sleep': ['sleep', 'infinity']}


def test_pods_pinned_round_robin(tmp_path, capsys):
    found = generate(tmp_path, capsys, '6', '--pin', '4')
    assert [p.node_name for p in found.pods] == ['node1', 'node2', 'node3', 'node4', 'node1', 'node2']
    assert found.namespaces['scale'].labels['ns'] == 'scale'
