# restate-examples: every target bootstraps what it needs (pinned) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export RESTATE_EXAMPLES_CACHE ?= $(HOME)/.cache/restate-examples

.PHONY: run test doctor lint venv restate controlplane traefik node-packages images cluster cluster-down env bench clean
.PHONY: soak fuzz mutants e2e-kind kind-node

# A virtualenv with the pinned dependencies, rebuilt when pyproject.toml or the packages change.
$(VENV)/.stamp: pyproject.toml $(wildcard services/*/__init__.py operator/*/__init__.py)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -e '.[operator,dev,bench]'
	touch $@

venv: $(VENV)/.stamp

# The real Restate server and CLI from the npm registry, cached outside the repository.
restate:
	@scripts/install-restate.sh

# Kubernetes control-plane and node binaries, helm, CoreDNS, built from Go modules into the cache.
controlplane:
	@localcluster/tools/build.sh

# Traefik (the local node's ingress controller) and the Gateway API CRDs, from their Go modules.
traefik:
	@localcluster/tools/build-traefik.sh >/dev/null

# podman, containerd, the CNI plugins, mmdebstrap... from Debian (root; only what is missing).
node-packages:
	@localcluster/node-packages.sh

# The five images of the Dockerfile and restate-server's, with podman (no Docker, no registry),
# loaded into the local node when it runs (else at `make cluster`).
images: venv node-packages restate
	@localcluster/images/images.sh --save $(RESTATE_EXAMPLES_CACHE)/images/images.tar >/dev/null
	@$(PY) -m localcluster load-images

# A real single-node Kubernetes on this machine (root): prints the kubeconfig path.
# INGRESS=1 also starts Traefik, the ingress controller (Ingress and Gateway API).
cluster: venv controlplane node-packages
	@$(PY) -m localcluster up $(if $(INGRESS),--ingress)

# kind, kubeadm and a kind node image built on this machine (no registry, no Docker; root):
# localcluster/kind/build.sh, cached under $(RESTATE_EXAMPLES_CACHE)/kind.
# (images.sh first, for its podman configuration and the pause and base images; not `make
# images`, which would also load them into a running local node.)
kind-node: venv node-packages restate controlplane
	@localcluster/images/images.sh >/dev/null
	@localcluster/kind/build.sh >/dev/null

# The e2e suite (tests/e2e, the same tests and fixtures) on a kind cluster of that node image,
# with kind's podman provider (rootful) and the images loaded with `kind load`; under the node
# lock (one run on the host at a time), the cluster deleted and the host cleaned at the end.
# Not in .ci/run (its time budget is taken). With Docker and kind, `make test` uses kind too.
E2E_KIND_ARGS ?= tests/e2e
e2e-kind: venv kind-node
	flock /tmp/restate-examples-node.lock env KIND_EXPERIMENTAL_PROVIDER=podman \
	  PATH="$$(localcluster/kind/build.sh --print-bin-dir):$$PATH" \
	  RESTATE_EXAMPLES_KIND_IMAGE="$$(localcluster/kind/build.sh --print-image)" \
	  RESTATE_EXAMPLES_KIND_CLUSTER=restate-examples-e2e \
	  $(PY) -m pytest $(E2E_KIND_ARGS) -m e2e -p no:cacheprovider

# Stops it and removes everything it left on the host (processes, mounts, bridge, chains...).
cluster-down: venv
	@$(PY) -m localcluster down

# The exports for kubectl and helm on the cluster: `eval "$$(make -s env)"` (after `make cluster`).
env: venv
	@$(PY) -m localcluster env

# First command of the README: the four examples behind a real Restate server.
run: venv restate
	@$(PY) scripts/run_local.py

# What this machine tests, tier by tier, and why a tier is skipped (testkit/tiers.py): runs and
# installs nothing.
doctor:
	@$(PYTHON) -m testkit.tiers

# Second command of the README: what this machine can test (ruff and mypy included). The
# preflight first, before any install; then only the prerequisites of the tiers that run
# (a skipped tier installs nothing: no node-packages, no Go builds); pytest names each skip.
# The Go builds and the images (tens of minutes cold) run beside the tests that need none of
# them, which go first; the others wait for them (tests/plugins/builds.py).
test:
	@$(PYTHON) -m testkit.tiers
	@$(MAKE) --no-print-directory venv $$($(PYTHON) -m testkit.tiers --targets first) lint
	$(PY) -m pytest --build-beside="$$($(PYTHON) -m testkit.tiers --targets beside)"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services operator localcluster testkit tests scripts bench reliability

# Python vs the TypeScript SDK vs a no-op ceiling on one real server: docs/benchmarks.md
# (about 20 minutes; installs wrk from Debian, Node 22 and the TypeScript peer from npm).
bench: venv restate
	$(PY) bench/run.py

# Thousands of invocations while processes are SIGKILLed, crash or get SIGTERM and
# restate-server is SIGKILLed; checked from the effects: docs/reliability.md (a few minutes).
soak: venv restate
	$(PY) -m reliability.soak

# schemathesis with Restate's OpenAPI documents, raw malformed bodies, the services' own
# routes: no 5xx, 4xx naming the problem, nothing left retrying: docs/reliability.md.
fuzz: venv restate
	$(PY) -m reliability.fuzz

clean:
	rm -rf $(VENV)

# Named mutants of what carries the README's promises (examples, runtime, shutdown, chart,
# policies, operator), each run against the tests that claim it: every one must make a test
# fail. Report in docs/reliability.md. Not part of `make test` (tens of minutes).
mutants: venv restate controlplane node-packages
	$(PY) -m reliability.mutants

