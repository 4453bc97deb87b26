"""The Services table on a real kernel, in a throwaway network namespace
(no lab): nft takes every kind of Service podnet writes, the listing digest
holds across reads and ignores what packets put in affinity sets, and the
nftables generation moves on every change to any table, never on a read."""
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = r'''
import json, subprocess, sys
sys.path.insert(0, %(tests)r)
sys.path.insert(0, %(unit)r)
import podnet_testlib
from test_services import web, PODS, RUNNING
from ansible.module_utils.podnet.kernel import nft
from ansible.module_utils.podnet.services import endpoints, ruleset

def run(argv, data=None):
    done = subprocess.run(argv, input=data, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr

nodeport = dict(web()['ports'][0], node_port=30080)
kinds = [web(), web(name='sticky', cluster_ip='10.43.0.51', affinity_timeout=60),
         web(name='np', cluster_ip='10.43.0.52', type='NodePort', ports=[nodeport]),
         web(name='lb', cluster_ip='10.43.0.53', type='LoadBalancer', external_local=True,
             ports=[dict(nodeport, node_port=30081)]),
         web(name='none', cluster_ip='10.43.0.54', selector={'app': 'nobody'}),
         web(name='headless', cluster_ip=None)]
found = endpoints.resolve(kinds, PODS, RUNNING, ())
text = ruleset.compile_node(kinds, found, 'node1', '10.11.1.11', '10.42.0.0/16')
nft.load_text(run, ruleset.FAMILY, ruleset.NAME, text)
out = {'first': nft.listing_digest(run, ruleset.FAMILY, ruleset.NAME), 'gen1': nft.generation()}
out['second'] = nft.listing_digest(run, ruleset.FAMILY, ruleset.NAME)
out['gen2'] = nft.generation()
subprocess.run(['nft', 'add', 'element', 'ip', 'podnet-services',
                'aff-default/sticky/tcp/80__10.42.0.2/8080', '{ 10.42.9.9 }'], check=True)
out['with_affinity'] = nft.listing_digest(run, ruleset.FAMILY, ruleset.NAME)
out['gen3'] = nft.generation()
subprocess.run(['nft', 'add', 'rule', 'ip', 'podnet-services', 'services', 'counter'], check=True)
out['changed'] = nft.listing_digest(run, ruleset.FAMILY, ruleset.NAME)
out['gen4'] = nft.generation()
nft.load_text(run, ruleset.FAMILY, ruleset.NAME, text)
out['reloaded'] = nft.listing_digest(run, ruleset.FAMILY, ruleset.NAME)
print(json.dumps(out))
'''


def test_the_table_loads_and_its_digest_and_generation_tell_the_truth():
    script = SCRIPT % {'tests': str(HERE.parent), 'unit': str(HERE.parent / 'unit')}
    done = subprocess.run(['unshare', '--net', sys.executable, '-c', script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out['first'] == out['second'] == out['with_affinity'] == out['reloaded']
    assert out['changed'] != out['first']
    assert out['gen1'] == out['gen2'], 'a read moved the generation'
    assert out['gen3'] != out['gen2'] and out['gen4'] != out['gen3'], 'a change left the generation'
