# gatebox: `make run` starts the box, `make test` sets up everything and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= $(CURDIR)/build/dev-data
APT_PACKAGES := swaks postfix dnsmasq-base openssl ca-certificates chromium dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd

.PHONY: run dev test deps apt venv bench clean

run: dev

# Runs the stack locally on unprivileged ports (the firmware image will replace this).
dev: venv
	@test -f $(DATA)/gatebox.db || $(VENV)/bin/gatebox --data $(DATA) init --domain example.com
	$(VENV)/bin/gatebox --data $(DATA) run --bind 127.0.0.1 --smtp-port 2525 --submission-port 2587

test: deps
	$(PY) -m pytest -q -p no:cacheprovider tests

deps: apt venv

# policy-rc.d (exit 101) keeps the packages from starting the system Dovecot (it would take
# ports 110/143); gatebox runs its own private Dovecot. A policy-rc.d already there is left alone.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
		made_policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1; \
		fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		status=$$?; if [ -n "$$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
		exit $$status; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml vendor/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]' -e ./vendor
	touch $@

bench: deps
	$(PY) bench/relay_throughput.py

clean:
	rm -rf build $(VENV)
