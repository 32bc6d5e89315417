#!/bin/sh
# Post-build: the same read-only-root arrangements as the QEMU image
# (qemu/customize-rootfs.sh), for the Buildroot target tree in $1.
set -eu
target=$1
: > "$target/etc/machine-id"
rm -rf "$target/var/log"
ln -s /data/log "$target/var/log"
mkdir -p "$target/data" "$target/mnt/boot"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"
# GRUB looks for /vmlinuz in the slot, as in the Debian-built image.
for kernel in bzImage Image; do
    [ -e "$target/boot/$kernel" ] && ln -sf "boot/$kernel" "$target/vmlinuz"
done
# The admin UI is built into this firmware's `gatebox run`.
if grep -rqs -- "--http-port" "$target"/usr/lib/python3*/site-packages/firmware/cli.py; then
    echo "GATEBOX_HTTP_OPTIONS=--http-port 443" > "$target/etc/gatebox/run-options"
fi
# Firmware updates (RAUC): the compatible string names the architecture, the
# version file is what the slot reports, and the keyring is the vendor's
# update CA, which a production build names in GATEBOX_UPDATE_CA.
arch=$(sed -n 's/^BR2_ARCH="\(.*\)"/\1/p' "${BR2_CONFIG:?}")
sed -i "s/^compatible=gatebox-.*/compatible=gatebox-$arch/" "$target/etc/rauc/system.conf"
sed -n 's/^__version__ = "\(.*\)"/\1/p' "$target"/usr/lib/python3*/site-packages/firmware/__init__.py \
    > "$target/etc/gatebox/version"
if [ -n "${GATEBOX_UPDATE_CA:-}" ]; then
    cp "$GATEBOX_UPDATE_CA" "$target/etc/rauc/keyring.pem"
else
    echo "post-build: GATEBOX_UPDATE_CA is not set; this firmware refuses every update bundle" >&2
fi
