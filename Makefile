# Two commands matter: `make demo` and `make test`. Everything else is for developers and operators.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Data Docs stylesheets and scripts, fetched once from the npm registry (never a CDN at run time)
DOCS_ASSETS_MANIFEST := linkage/identifiable/validation/data_docs_assets.yaml
DOCS_ASSETS := linkage/identifiable/validation/data_docs_assets/.manifest-sha256
WORKSPACE ?= workspace
PEOPLE ?= 200000

# Nothing in this project may reach the internet: switch off every library's telemetry.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(CURDIR)/$(BIN)/python

.PHONY: demo test check install java browser prefect-server spark-cluster spark-cluster-stop audit-writer audit-writer-stop output-gate output-gate-stop clean

demo: $(STAMP) $(DOCS_ASSETS)
	$(BIN)/ehl demo --workspace $(WORKSPACE) --people $(PEOPLE)

test: $(STAMP) $(DOCS_ASSETS) browser
	$(BIN)/pytest -q -p no:cacheprovider --durations=25 $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check flows linkage ig_policies analysis synthetic tests benchmarks
	$(BIN)/ruff format --check flows linkage ig_policies analysis synthetic tests benchmarks

install: $(STAMP) $(DOCS_ASSETS)

java:
	@if ! command -v java >/dev/null 2>&1; then \
	  echo "Java 17 is required (Spark runs on the JVM) but 'java' was not found."; \
	  echo "Install it, then run this command again:"; \
	  echo "  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless"; \
	  echo "  macOS:          brew install openjdk@17"; \
	  exit 1; \
	fi

# Re-install only when the lock file or the package metadata changes: a second run is instant.
$(STAMP): requirements.lock pyproject.toml | java
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

# Pinned packages and sha512 integrities in the manifest; npm pack fetches, the script checks and keeps
# only the files the pages load. Reruns only when the manifest changes.
$(DOCS_ASSETS): $(DOCS_ASSETS_MANIFEST) | $(STAMP)
	$(BIN)/python -m linkage.identifiable.validation.data_docs vendor
	@touch $(DOCS_ASSETS)

# The Data Docs browser test opens the pages in Debian's Chromium (headless, network cut; nothing
# downloads a browser). Installed here when missing and running as root, as CI does; otherwise the
# test fails saying what to install.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for the Data Docs browser test (apt-get, about a minute)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is not installed, so the Data Docs browser test will fail. Install it as root:"; \
	    echo "  apt-get update && apt-get install -y chromium"; \
	  fi; \
	fi

prefect-server: $(STAMP)
	infra/scripts/prefect-server.sh start

spark-cluster: $(STAMP)
	infra/scripts/spark-cluster.sh start

spark-cluster-stop:
	infra/scripts/spark-cluster.sh stop

# The audit writer of a local deployment (its key and anchor under infra/.run/audit-writer/).
audit-writer: $(STAMP)
	EHL_WORKSPACE=$(CURDIR)/$(WORKSPACE) infra/scripts/audit-writer.sh start

audit-writer-stop:
	infra/scripts/audit-writer.sh stop

# The output gate of a local deployment, the one writer of outputs/pending/ (its key under
# infra/.run/output-gate/); it audits through the audit writer, so start that first.
output-gate: $(STAMP)
	infra/scripts/output-gate.sh start

output-gate-stop:
	infra/scripts/output-gate.sh stop

clean:
	rm -rf $(VENV) .prefect build *.egg-info linkage/identifiable/validation/data_docs_assets
