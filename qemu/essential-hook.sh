#!/bin/sh
# mmdebstrap essential hook (before the kernel is installed): make the
# kernel's own initramfs run build the small one (MODULES=list) right away,
# instead of a large one that customize-rootfs.sh would throw away. Under
# arm64 emulation the large one alone takes several minutes.
set -eu
mkdir -p "$1/etc/initramfs-tools/conf.d"
printf 'MODULES=list\nCOMPRESS=gzip\n' > "$1/etc/initramfs-tools/conf.d/gatebox"
