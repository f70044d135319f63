# The two commands a new user needs: `make demo` and `make test`. Everything else is what they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup servers test-servers stop status demo test test-tools lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

servers:
	scripts/servers.sh start

# The tests also need a three-master Redis Cluster (the cluster sink and reader).
test-servers:
	scripts/servers.sh start kafka redis redis-cluster

stop:
	scripts/servers.sh stop kafka redis redis-cluster

status:
	scripts/servers.sh status

demo: setup servers
	eval "$$(scripts/servers.sh env)" && $(BIN)/shopstream demo

# Browser tests need Debian's Chromium; promtool comes with Debian's prometheus package.
test-tools:
	scripts/servers.sh install
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get install -y -q --no-install-recommends chromium chromium-driver || \
		 (apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver))

lint: setup
	$(BIN)/ruff check .

test: setup test-tools test-servers lint
	eval "$$(scripts/servers.sh env)" && $(BIN)/pytest -q
