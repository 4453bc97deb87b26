# podnet: the user's verbs. Each target bootstraps what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export ANSIBLE_FORCE_COLOR ?= $(if $(CI),0,1)
INVENTORY ?= inventories/lab

NODE ?= node1
COLLECTION := build/podnet-testbed-$(shell sed -n 's/^version: *//p' collection/galaxy.yml).tar.gz

MANIFESTS ?=
MANIFEST_VARS = $(if $(MANIFESTS),-e '{"podnet_manifests": $(shell python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' $(MANIFESTS))}')
.PHONY: help bootstrap bootstrap-tests bench-scale grade-cni exec outside up podman-demo test test-vms unit unit-and-integration molecule lint sanity collection down bench ssh pictures

help:
	@echo "make up    - bring up the lab ($(INVENTORY)) and converge the cluster (MANIFESTS='manifests/seed manifests/app')"
	@echo "make podman-demo - podman runs containers on node1 and node2 through the nodes' CNI network (docs/cni.md)"
	@echo "make test  - lint, sanity, unit tests, lab integration tests, every molecule scenario but vms"
	@echo "make test-vms - the cluster on 3 qemu VMs: converge, conformance with G5, reset"
	@echo "make down  - tear the lab down, leaving nothing behind"
	@echo "make collection - build the podnet.testbed collection: $(COLLECTION)"
	@echo "make ssh   - log in to a lab node (NODE=node1; CMD='lsns -t net' runs one command)"
	@echo "make outside - run CMD on the lab's outside host (a client off the cluster)"
	@echo "make exec  - run CMD in a pod's container, as kubectl exec (POD=ns/name or ns/<workload>, CONTAINER=)"
	@echo "make pictures - draw the seed's three flows from the running lab into docs/pictures/"
	@echo "make grade-cni - the conformance suite against each pod wiring (native, bridge, ptp, podnet-cni): the guarantees x plugins table"
	@echo "make bench - lab, pod, policy, explain, Services, everyday-loop and podnet-cni benchmarks, each against its baseline"
	@echo "make bench-scale - 1,000 pods on 20 nodes (inventories/scale): converge, re-converge, removal (CORES=N: on N CPUs)"

bootstrap:
	@bin/bootstrap

bootstrap-tests:
	@bin/bootstrap --tests

# MANIFESTS='manifests/seed manifests/app' replaces podnet_manifests (roles/cluster).
up: bootstrap
	ansible-playbook -i $(INVENTORY) playbooks/up.yml $(MANIFEST_VARS)

# podman (bin/bootstrap --podman) on the lab: a container on node2 serves,
# one on node1 asks across nodes, without NAT; both go (bin/podman-demo).
podman-demo:
	@bin/bootstrap --podman
	ansible-playbook -i $(INVENTORY) playbooks/up.yml $(MANIFEST_VARS)
	@bin/podman-demo $(INVENTORY)

down: bootstrap
	ansible-playbook -i $(INVENTORY) playbooks/lab.yml -e lab_state=absent

# Lint first (seconds), then sanity (a minute), molecule, pytest last: the
# run ends with pytest's summary line.
test: bootstrap-tests lint sanity molecule unit-and-integration

# ruff's classic rules (pycodestyle errors, pyflakes) on every Python file:
# ruff.toml. yamllint on every YAML file, its warnings failing too: .yamllint.
# ansible-lint's production profile on the Ansible content, offline: .ansible-lint.
lint: bootstrap
	ruff check
	yamllint --strict .
	ansible-lint

# The conformance suite against each pod wiring (podnet_cni): native,
# Debian's bridge and ptp chains, and podnet-cni's; the guarantees x plugins
# table goes to .lab/report/grade-cni.md and README.md (bin/grade-cni).
# Long: not in make test.
grade-cni: bootstrap-tests
	bin/grade-cni --readme $(WIRINGS)

# The collection, laid out from the tree by bin/build-collection (it says how).
collection: bootstrap
	bin/build-collection

# ansible-test sanity on the collection as it ships (bin/sanity: offline,
# ansible-core 2.21 only; tests/sanity/ignore-2.21.txt gives each ignore's reason).
sanity: collection
	bin/sanity $(COLLECTION)

# The vms scenario runs under make test-vms: under TCG it takes longer than
# all the others together (figures in README, "Real VMs").
molecule: bootstrap
	molecule test --all --exclude vms

unit-and-integration: bootstrap-tests
	python -m pytest -m 'not vmlab' --durations=25 tests/unit tests/integration tests/faults

# The cluster on 3 qemu VMs (inventories/vmlab): the molecule scenario (converge,
# idempotence, the conformance suite with G5), then reset.yml on fresh VMs.
test-vms: bootstrap
	molecule test -s vms
	python -m pytest -m vmlab tests/integration

unit: bootstrap
	python -m pytest tests/unit

# The seed's three flows, explained on the running lab (make up) and drawn.
pictures: bootstrap
	ansible-playbook -i $(INVENTORY) playbooks/pictures.yml

bench: bootstrap
	python bench/lab_bench.py
	python bench/pods_bench.py 100
	python bench/policy_bench.py 100 1000
	python bench/explain_bench.py
	python bench/services_bench.py
	python bench/everyday_bench.py
	python bench/cni_bench.py 100

# Minutes, not seconds, and a 20-node lab: not part of make bench.
bench-scale:
	@bin/bootstrap --bench-scale
	python bench/scale_bench.py 1000 $(if $(CORES),--cores $(CORES))
	python bench/policy_bench.py --pods 1000 --nodes 20 1000

# A command in a pod's container (bin/podnet-exec says how it finds the pod).
exec: export PODNET_EXEC_CMD = $(value CMD)
exec:
	@bin/podnet-exec $(INVENTORY) $(POD) $(CONTAINER) -- sh -c "$$PODNET_EXEC_CMD"

# A command on the lab's outside host (203.0.113.10), a client off the
# cluster: its network namespace, entered from this machine (it has no SSH).
outside: export PODNET_OUTSIDE_CMD = $(value CMD)
outside:
	@nsenter -t $$(pgrep -f 'podnet-lab-init [^ ]* outside' | head -1) -n sh -c "$$PODNET_OUTSIDE_CMD"

# Log in to a lab node with the lab's own key and host key (CMD= runs a
# command there, passed whole so that pipes and ; run on the node).
ssh: export PODNET_SSH_CMD = $(value CMD)
ssh:
	@ssh -F /dev/null -i .lab/ssh/id_ed25519 -o HostKeyAlias=podnet-lab \
	    -o UserKnownHostsFile=.lab/ssh/known_hosts -o StrictHostKeyChecking=yes \
	    root@$$(ansible-inventory -i $(INVENTORY) --host $(NODE) \
	            | python3 -c 'import json, sys; print(json.load(sys.stdin)["ansible_host"])') \
	    $(if $(CMD),"$$PODNET_SSH_CMD")
