# ClusterDNS: `make run` serves the example cluster on 127.0.0.1:1053, `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/clusterdns -conf examples/Corefile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n 4

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The benchmark (docs/performance.md): dnsperf against ClusterDNS, CoreDNS 1.14.7 and dnsmasq.
# `make bench QUICK=1` is a ~4-minute check; BENCH_ARGS passes bench/run.py's other flags.
# COREDNS=path is the CoreDNS to compare with (default: the reference in ../shared/tools;
# without one, dnsmasq alone). dnsmasq-base is dnsmasq without the system service (port 53).
bench: $(BENCH_STAMP)
	@command -v dnsperf >/dev/null && command -v dnsmasq >/dev/null || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y dnsperf dnsmasq-base; }
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) $(if $(COREDNS),--coredns $(COREDNS)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
