# The README's two commands: `make demo` and `make test`.  Both set everything up first.

# The newest python3.X (X >= 11) on PATH that actually runs: a candidate must start (a pyenv shim
# of a version that is not selected exits with "command not found") and be at least 3.11.
# PYTHON=... on the command line or in the environment overrides.
PYTHON_MINORS := 30 29 28 27 26 25 24 23 22 21 20 19 18 17 16 15 14 13 12 11
PYTHON_RUNS := -c 'import sys; sys.exit(sys.version_info < (3, 11))'
# Looked for once, and only when a virtualenv is made (the first use replaces this definition).
ifeq ($(origin PYTHON),undefined)
PYTHON = $(eval PYTHON := $(shell for v in $(PYTHON_MINORS); do \
	if python3.$$v $(PYTHON_RUNS) >/dev/null 2>&1; then echo python3.$$v; break; fi; done))$(PYTHON)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stock Buildbot 4.3, for the interop tests only: buildfarm imports nothing of it.
INTEROP_VENV := .venv-interop
INTEROP_STAMP := $(INTEROP_VENV)/.installed
# The lock tool (uv), for `make lock` and `make upgrade-deps` only.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed
# Every virtualenv is installed from its lock: each package, direct and transitive, pinned with
# its hashes (requirements/README.md).  One lock per virtualenv fits every Python from 3.11 on.
LOCK := requirements/venv.txt
INTEROP_LOCK := requirements/venv-interop.txt
TOOLS_LOCK := requirements/tools.txt
PIP_LOCKED := pip install -q --require-hashes -r
PYTEST_ARGS ?=
# Two pytest-xdist workers (the machines have 2 cores; most tests wait on daemons, not the CPU).
# Each file's tests run together in one worker, in order (module fixtures start once); tests that
# listen on fixed ports take the `fixed_ports` fixture (tests/conftest.py).  (xdist 3.8's
# loadgroup ignores its xdist_group marks under pytest 9.)  PYTEST_WORKERS="-n 0": one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile

.PHONY: demo test bench chaos lint install interop system-packages clean demo-stop lock upgrade-deps \
	print-python

# make_venv DIR: a virtualenv of $(PYTHON) in DIR, after saying which Python it is (Debian splits
# venv into python3-venv).
define make_venv
@test -n "$(PYTHON)" || { echo "No python3.X >= 3.11 runs here: install one or pass PYTHON=..." >&2; exit 1; }
@$(PYTHON) $(PYTHON_RUNS) || { echo "$(PYTHON) does not run or is older than 3.11" >&2; exit 1; }
@echo "$(1): $(PYTHON) ($$($(PYTHON) -c 'import sys; print(sys.version.split()[0])'))"
$(PYTHON) -m venv $(1) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(1); }
endef

$(BIN)/python:
	$(call make_venv,$(VENV))

# Which Python a new virtualenv would get.
print-python:
	@echo $(PYTHON)

# The locked packages (pip/setuptools/wheel included), then the project itself, editable, without
# its dependencies and built with the locked setuptools (no build isolation fetching another).
$(STAMP): $(BIN)/python $(LOCK) setup.py pyproject.toml
	$(BIN)/python -m $(PIP_LOCKED) $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

# Real components the tests start on loopback: PostgreSQL (initdb/pg_ctl), OpenSSH sshd, the
# OpenIPMI BMC simulator (ipmi_sim) and ipmitool, net-snmp's snmpd and tools, headless
# Chromium, git, Mercurial, Subversion (svnserve) and patch for the source step tests, pass
# and GnuPG for the SecretInPass tests, and RabbitMQ (rabbitmq-server) for c['mq'] amqp: the tests
# start their own broker node (tests/fixtures/rabbitmq.py), never the system service.
# Needs root for apt-get; installs only what is missing.
SYSTEM_TOOLS := /usr/lib/postgresql/*/bin/initdb /usr/sbin/sshd /usr/bin/ssh-keygen /usr/bin/ipmi_sim \
	/usr/bin/ipmitool /usr/sbin/snmpd /usr/bin/snmpset /usr/bin/chromium /usr/bin/git /usr/bin/hg \
	/usr/bin/svn /usr/bin/svnserve /usr/bin/patch /usr/bin/pass /usr/bin/gpg /usr/lib/rabbitmq/bin/rabbitmq-server
SYSTEM_PACKAGES := postgresql openssh-server openssh-client openipmi ipmitool snmpd snmp chromium \
	fonts-liberation git mercurial subversion patch pass gnupg rabbitmq-server
system-packages:
	@ls $(SYSTEM_TOOLS) >/dev/null 2>&1 || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			$(SYSTEM_PACKAGES); }

$(INTEROP_VENV)/bin/python:
	$(call make_venv,$(INTEROP_VENV))

$(INTEROP_STAMP): $(INTEROP_LOCK) $(INTEROP_VENV)/bin/python
	$(INTEROP_VENV)/bin/python -m $(PIP_LOCKED) $(INTEROP_LOCK)
	touch $(INTEROP_STAMP)

interop: $(INTEROP_STAMP)

lint: install
	$(BIN)/ruff check master slave common tests twisted contrib benchmarks setup.py

# The browser tests' screenshots go to build/ here; run tests/browser directly to refresh docs/screenshots.
test: system-packages install interop lint
# A hang that pytest-timeout cannot interrupt (its SIGALRM landing inside a Twisted callback)
# still ends the run: SIGINT after 40 minutes makes pytest report what ran and fail.
	BUILDFARM_SCREENSHOT_DIR=$(CURDIR)/build/screenshots timeout -s INT -k 60 2400 \
		$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Side-by-side benchmarks against stock Buildbot 4.3 (long: tens of minutes); BENCH_ARGS e.g.
# "--workloads W1,W4 --runs 1".
BENCH_ARGS ?=
bench: install interop
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Fault injection (issue 21, docs/operations.md "Fault injection"): 3 masters, 12 slaves, one
# PostgreSQL and one RabbitMQ, 300 build requests and 300 tasks under master kills and database
# and broker restarts, 3 runs in a row; CHAOS_ARGS e.g. "--seed 1234 --runs 1" to replay one.
CHAOS_ARGS ?=
chaos: install interop system-packages
	PYTHONPATH=tests $(BIN)/python -m fixtures.chaos $(CHAOS_ARGS)

demo: install
	$(BIN)/python contrib/demo.py --basedir demo

demo-stop:
	-$(BIN)/buildslave stop demo/slave1
	-$(BIN)/buildslave stop demo/slave2
	-$(BIN)/buildmaster stop demo/master

# The lock tool, itself locked.
$(TOOLS_VENV)/bin/python:
	$(call make_venv,$(TOOLS_VENV))

$(TOOLS_STAMP): $(TOOLS_LOCK) $(TOOLS_VENV)/bin/python
	$(TOOLS_VENV)/bin/python -m $(PIP_LOCKED) $(TOOLS_LOCK)
	touch $(TOOLS_STAMP)

# Rewrite the locks after a change to setup.py or requirements/*.in, keeping every pin that still
# fits; upgrade-deps moves every package to its newest release.  Both print the versions that moved;
# then `make install interop` brings the virtualenvs to the new locks.
lock: $(TOOLS_STAMP)
	requirements/lock.sh $(TOOLS_VENV)/bin/uv

upgrade-deps: $(TOOLS_STAMP)
	requirements/lock.sh $(TOOLS_VENV)/bin/uv --upgrade

clean:
	rm -rf $(VENV) $(INTEROP_VENV) $(TOOLS_VENV) build *.egg-info demo
