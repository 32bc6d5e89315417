# gatebox: `make run` starts the box, `make test` sets up everything and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= $(CURDIR)/build/dev-data
# apt installs with --no-install-recommends, so whatever a test needs from a
# package's Recommends is named here: swaks's TLS is libnet-ssleay-perl. So is
# what only a compiler toolchain brings along: Playwright's node needs libatomic1.
# The fast lane (make check): Python with venv, and what the unit tests sign and
# check real update bundles with.
CHECK_APT_PACKAGES := python3 python3-venv openssl rauc dbus-daemon squashfs-tools
APT_PACKAGES := $(CHECK_APT_PACKAGES) swaks libnet-ssleay-perl postfix dnsmasq-base ca-certificates \
	chromium dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-sieve socat sqlite3 libatomic1 slapd \
	clamav clamav-daemon clamav-freshclam clamav-testfiles publicsuffix
# The benchmarks' peers (bench/): SpamAssassin's spamd and spamc beside the Anti-Spam scoring.
BENCH_APT_PACKAGES := spamassassin spamc spamd
# Building and booting the firmware image (qemu/); the system tests need them too.
IMAGE_APT_PACKAGES := mmdebstrap qemu-system-x86 qemu-utils squashfs-tools grub-pc-bin grub-common \
	dosfstools mtools fdisk genimage rauc dbus-daemon
# Only for the aarch64 image: arm64 maintainer scripts under emulation, UEFI firmware.
IMAGE_AARCH64_APT_PACKAGES := qemu-user-static binfmt-support arch-test qemu-system-arm qemu-efi-aarch64
ARCH ?= x86_64
IMAGE := build/gatebox-$(ARCH).img
# The image is rebuilt when any of these is newer than it.
IMAGE_SOURCES := pyproject.toml $(shell find firmware webui softpaks rootfs-overlay qemu buildroot/board \
	-type f ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null)

.PHONY: run system-test dev test check deps apt check-apt bench-apt image-apt venv bench bench-image clean image image-aarch64 bundle

# Boots the firmware image under QEMU (built first when missing or older than
# the sources) and prints the loopback ports and the admin URL.
run: deps image
	$(PY) qemu/boot.py --arch $(ARCH)

# Runs the stack locally on unprivileged ports, without the image.
dev: venv
	@test -f $(DATA)/gatebox.db || $(VENV)/bin/gatebox --data $(DATA) init --domain example.com
	@echo "web admin: https://127.0.0.1:2443/ (self-signed certificate)"
	@$(VENV)/bin/gatebox --data $(DATA) setup-code --if-needed
	$(VENV)/bin/gatebox --data $(DATA) run --bind 127.0.0.1 --smtp-port 2525 --submission-port 2587 --http-port 2443

# The whole suite, the QEMU system tests of the image included.
test: deps image
	tests/run-lanes $(PY)

# The fast lane: unit and in-process tests (tests/unit, the policy chain
# through an in-process smtpd included); no image, no QEMU, no browser.
check: check-apt venv
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

system-test: deps image
	$(PY) -m pytest -q -p no:cacheprovider tests/system

deps: apt image-apt venv

# $(call apt_install,PACKAGES): installs those of PACKAGES that are missing.
# policy-rc.d (exit 101) keeps the packages from starting the system Dovecot (it would take
# ports 110/143); gatebox runs its own private Dovecot. A policy-rc.d already there is left alone.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
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
endef

apt:
	$(call apt_install,$(APT_PACKAGES))

check-apt:
	$(call apt_install,$(CHECK_APT_PACKAGES))

bench-apt:
	$(call apt_install,$(BENCH_APT_PACKAGES))

image-apt:
	$(call apt_install,$(IMAGE_APT_PACKAGES))

image: $(IMAGE)

build/gatebox-%.img: $(IMAGE_SOURCES) | image-apt venv
	PYTHON=$(CURDIR)/$(PY) qemu/build-image.sh $*

# A signed update bundle of the image's root slot: build/gatebox-$(ARCH)-VERSION.raucb
# (GATEBOX_BUNDLE_VERSION=x.y.z stamps another version; see qemu/build-bundle.sh).
bundle: $(IMAGE) | image-apt
	qemu/build-bundle.sh $(ARCH)

# Needs binfmt_misc for arm64 (qemu-user-static); says so and stops when absent.
image-aarch64: image-apt
	@DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(IMAGE_AARCH64_APT_PACKAGES) >/dev/null
	@qemu/can-run-arm64.sh
	$(MAKE) build/gatebox-aarch64.img

venv: $(VENV)/.installed

# python3 -m venv needs python3-venv (check-apt) on Debian.
$(VENV)/.installed: pyproject.toml vendor/pyproject.toml | check-apt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]' -e ./vendor
	touch $@

bench: deps bench-apt
	$(PY) bench/relay_throughput.py

# Image size, boot time to SMTP/HTTPS, service memory in a 256 MB guest.
bench-image: deps image
	$(PY) bench/image.py

clean:
	rm -rf build $(VENV)
