# Two entry points for a fresh machine: `make demo` (the main job on embedded defaults) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
FORGE   = contracts/node_modules/@foundry-rs/forge-linux-amd64/bin/forge

.PHONY: setup contracts-deps services-deps browser-deps contracts-test artifacts check-artifacts demo test lint bench \
        clean fuzz fuzz-smoke test-fast typecheck analyse

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py deai_data/storage/filecoin/_native_commp.c indexer/pyproject.toml \
                    requirements/runtime.lock requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . -e indexer
	touch $@

# anvil, forge, solc (WebAssembly) and OpenZeppelin from the committed npm lockfile; nothing is downloaded
# at build time (forge uses contracts/tools/solc, offline).
contracts-deps: contracts/node_modules/.installed

contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Storage services the tests run for real, from committed npm lockfiles: arlocal (a local Arweave
# gateway), arweave-js and arbundles (the reference clients; sqlite3 compiles from source, about 2
# minutes, once), and js-ipfs (an IPFS node; about 3 minutes, once).
services-deps: services/arweave/node_modules/.installed services/ipfs/node_modules/.installed

services/%/node_modules/.installed: services/%/package.json services/%/package-lock.json
	cd services/$* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

contracts-test: contracts-deps
	cd contracts && ../$(FORGE) test --summary

# Rebuild the contract and copy its ABI + bytecode into deai_data, the test tokens' into tests/data (commit both).
artifacts: contracts-deps setup
	cd contracts && ../$(FORGE) build
	$(BIN)/python contracts/tools/export_artifact.py

# slither over the contract, in a virtualenv of its own (it needs web3 7) and a scratch copy of the sources (it
# runs `forge clean` and `forge build --force`); any finding fails. Triage: contracts/slither.config.json and
# the `slither-disable-next-line` comments in src/, each with its reason (docs/security.md).
ANALYSIS_VENV ?= .venv-analysis
$(ANALYSIS_VENV)/.installed: requirements/analysis.lock
	$(PYTHON) -m venv $(ANALYSIS_VENV)
	$(ANALYSIS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/analysis.lock
	touch $@

analyse: contracts-deps $(ANALYSIS_VENV)/.installed
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	    cp -r contracts/foundry.toml contracts/slither.config.json contracts/src contracts/tools "$$scratch"/ && \
	    ln -s "$(CURDIR)/contracts/node_modules" "$$scratch/node_modules" && \
	    cd "$$scratch" && PATH="$(CURDIR)/$(dir $(FORGE)):$$PATH" "$(CURDIR)/$(ANALYSIS_VENV)/bin/slither" . \
	        >slither.log 2>&1 || { cat slither.log; exit 1; }; grep "analyzed" "$$scratch/slither.log"

# CI: fail when deai_data/market/DataMarket.json or tests/data/tokens.json differs from what the sources compile to.
check-artifacts: contracts-deps setup
	cd contracts && ../$(FORGE) build
	$(BIN)/python contracts/tools/export_artifact.py --check

demo: setup
	$(BIN)/deai-data demo

lint: setup
	$(BIN)/ruff check .

# mypy over deai_data and the indexer (settings in pyproject.toml: every function annotated).
typecheck: setup
	$(BIN)/mypy

# The browser the catalog page tests drive (tests/test_catalog_web.py): Debian's chromium (Playwright's own
# download is not reachable here). Installed with apt when missing and this runs as root.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

test: setup contracts-deps services-deps browser-deps lint typecheck contracts-test check-artifacts analyse fuzz-smoke
	$(BIN)/python -m pytest

# The inner loop: no services (anvil, arlocal, IPFS) and nothing marked slow; `make test` runs everything.
test-fast: setup
	$(BIN)/python -m pytest -m "not services and not slow"

# The parsers of untrusted bytes under Atheris (libFuzzer); fuzz/README.md. `fuzz` grows fuzz/corpus (commit
# what it adds); `fuzz-smoke` (in `make test`) replays the corpus and fuzzes each target a fixed number of
# runs from a fixed seed, so that CI is repeatable; new inputs go to a scratch folder.
FUZZ_TARGETS = manifest canonical car dag_cbor dag_pb cid ans104_bundle shard_header json_answer arweave_tx \
               locator key_import
FUZZ_SECONDS ?= 300
fuzz: setup
	for t in $(FUZZ_TARGETS); do FUZZ_TARGET=$$t PATH=$(BIN):$$PATH fuzz/run.py -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -timeout=10 -artifact_prefix=fuzz/ fuzz/corpus/$$t || exit 1; done

fuzz-smoke: setup
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && for t in $(FUZZ_TARGETS); do \
	    mkdir -p "$$scratch/$$t" && FUZZ_TARGET=$$t PATH=$(BIN):$$PATH fuzz/run.py -seed=1 -runs=30000 \
	        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$$scratch/" "$$scratch/$$t" fuzz/corpus/$$t \
	        >"$$scratch/$$t.log" 2>&1 || { tail -40 "$$scratch/$$t.log"; exit 1; }; done; \
	echo "fuzz-smoke: $(words $(FUZZ_TARGETS)) targets clean"

clean:
	rm -rf $(VENV) $(ANALYSIS_VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis contracts/out contracts/cache services/*/node_modules \
	       fuzz/.seed-ks
