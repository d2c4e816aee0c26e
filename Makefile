# Two commands matter: `make demo` and `make test`. Everything else is for developers and operators.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
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

.PHONY: demo test check install java prefect-server spark-cluster spark-cluster-stop clean

demo: $(STAMP)
	$(BIN)/ehl demo --workspace $(WORKSPACE) --people $(PEOPLE)

test: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check flows linkage ig_policies analysis synthetic tests benchmarks
	$(BIN)/ruff format --check flows linkage ig_policies analysis synthetic tests benchmarks

install: $(STAMP)

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

prefect-server: $(STAMP)
	infra/scripts/prefect-server.sh start

spark-cluster: $(STAMP)
	infra/scripts/spark-cluster.sh start

spark-cluster-stop:
	infra/scripts/spark-cluster.sh stop

clean:
	rm -rf $(VENV) .prefect build *.egg-info
