# The README's two commands: `make demo` and `make test`.  Both set everything up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stock Buildbot 4.3, for the interop tests only: buildfarm imports nothing of it.
INTEROP_VENV := .venv-interop
INTEROP_STAMP := $(INTEROP_VENV)/.installed
BUILDBOT_VERSION := 4.3.0
PYTEST_ARGS ?=

.PHONY: demo test bench lint install interop system-packages clean demo-stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }

$(STAMP): $(BIN)/python setup.py pyproject.toml
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Real components the tests start on loopback: PostgreSQL (initdb/pg_ctl), OpenSSH sshd, the
# OpenIPMI BMC simulator (ipmi_sim) and ipmitool, net-snmp's snmpd and tools, headless
# Chromium.  Needs root for apt-get; installs only what is missing.
SYSTEM_TOOLS := /usr/lib/postgresql/*/bin/initdb /usr/sbin/sshd /usr/bin/ssh-keygen /usr/bin/ipmi_sim \
	/usr/bin/ipmitool /usr/sbin/snmpd /usr/bin/snmpset /usr/bin/chromium
SYSTEM_PACKAGES := postgresql openssh-server openssh-client openipmi ipmitool snmpd snmp chromium \
	fonts-liberation
system-packages:
	@ls $(SYSTEM_TOOLS) >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			$(SYSTEM_PACKAGES); }

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(INTEROP_VENV)/bin/pip install -q buildbot==$(BUILDBOT_VERSION) buildbot-www==$(BUILDBOT_VERSION) \
		buildbot-worker==$(BUILDBOT_VERSION)
	touch $(INTEROP_STAMP)

interop: $(INTEROP_STAMP)

lint: install
	$(BIN)/ruff check master slave common tests twisted contrib benchmarks setup.py

# The browser tests' screenshots go to build/ here; run tests/browser directly to refresh docs/screenshots.
test: system-packages install interop lint
# A hang that pytest-timeout cannot interrupt (its SIGALRM landing inside a Twisted callback)
# still ends the run: SIGINT after 40 minutes makes pytest report what ran and fail.
	BUILDFARM_SCREENSHOT_DIR=$(CURDIR)/build/screenshots timeout -s INT -k 60 2400 \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# Side-by-side benchmarks against stock Buildbot 4.3 (long: tens of minutes); BENCH_ARGS e.g.
# "--workloads W1,W4 --runs 1".
BENCH_ARGS ?=
bench: install interop
	$(BIN)/pip install -q 'py-spy>=0.3.14'
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

demo: install
	$(BIN)/python contrib/demo.py --basedir demo

demo-stop:
	-$(BIN)/buildslave stop demo/slave1
	-$(BIN)/buildslave stop demo/slave2
	-$(BIN)/buildmaster stop demo/master

clean:
	rm -rf $(VENV) $(INTEROP_VENV) build *.egg-info demo
