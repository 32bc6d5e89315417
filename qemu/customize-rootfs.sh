#!/bin/sh
# mmdebstrap customize hook, run on the build host with the new root in $1:
# the project's venv, rootfs-overlay/, users and units, a read-only-friendly
# /etc and /var, a trimmed kernel module set and a small initramfs.
set -eu
root=$1 arch=$2 wheels=$3 top=$4
in_root() { chroot "$root" "$@"; }

# apt-get download (aarch64, below) needs DNS; package scripts may have
# replaced resolv.conf with systemd-resolved's link.
if [ -L "$root/etc/resolv.conf" ]; then
    rm "$root/etc/resolv.conf"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
fi

# The project and its dependencies, every wheel prepared by build-image.sh.
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$root/tmp/wheels/"
in_root python3 -m venv /opt/gatebox/venv
in_root /opt/gatebox/venv/bin/pip install -q --no-cache-dir --disable-pip-version-check \
    --no-index --find-links /tmp/wheels gatebox
in_root /opt/gatebox/venv/bin/pip uninstall -q -y pip setuptools
ln -s /opt/gatebox/venv/bin/gatebox "$root/usr/bin/gatebox"
ln -s /opt/gatebox/venv/bin/gatebox-usb-watch "$root/usr/bin/gatebox-usb-watch"
# The license signing key this build trusts, where the firmware looks for
# vendor keys (read-only, like the rest of the root).
trusted=$(in_root /opt/gatebox/venv/bin/python -c \
    'from firmware.licensing import trust; print(trust.PACKAGED_KEYS)')
cp "$wheels/../vendor.pub" "$root$trusted/vendor.pub"
rm -rf "$root/tmp/wheels"

# GRUB's arm64 EFI modules exist only as an arm64 package: take them with the
# new root's apt (still configured here) for the build host's grub-mkimage.
if [ "$arch" = aarch64 ]; then
    in_root sh -c 'cd /tmp && apt-get download -q grub-efi-arm64-bin' >/dev/null
    dpkg-deb -x "$root"/tmp/grub-efi-arm64-bin_*.deb "$wheels/../grub-arm64"
    rm -f "$root"/tmp/grub-efi-arm64-bin_*.deb
fi

tar -C "$top/rootfs-overlay" -cf - . | tar -C "$root" -xf - --keep-directory-symlink --no-same-owner
mkdir -p "$root/etc/gatebox"   # build-time files below; git keeps no empty directory

# ---- firmware updates (RAUC) ----
# The CA that signs update bundles is RAUC's keyring (a development CA made
# in build/keys/ unless GATEBOX_UPDATE_CA names the production one); the
# compatible string names this architecture; the version file is what the
# running slot reports (build-bundle.sh re-stamps it for a newer bundle).
if [ -z "${GATEBOX_UPDATE_CA:-}" ]; then "$top/qemu/dev-keys.sh" "$top/build/keys" >/dev/null; fi
cp "${GATEBOX_UPDATE_CA:-$top/build/keys/ca.cert.pem}" "$root/etc/rauc/keyring.pem"
sed -i "s/^compatible=gatebox-.*/compatible=gatebox-$arch/" "$root/etc/rauc/system.conf"
in_root /opt/gatebox/venv/bin/python -c 'import firmware; print(firmware.__version__)' \
    > "$root/etc/gatebox/version"
# ---- end of firmware updates ----

# Serve the admin UI only when this build's `gatebox run` can.
if in_root /opt/gatebox/venv/bin/gatebox run --help | grep -q -- --http-port; then
    echo "GATEBOX_HTTP_OPTIONS=--http-port 443" > "$root/etc/gatebox/run-options"
else
    echo "# this build's gatebox has no web UI yet (no --http-port)" > "$root/etc/gatebox/run-options"
fi
# clamd is gatebox-clamd.service here, not a child of `gatebox run`.
if in_root /opt/gatebox/venv/bin/gatebox run --help | grep -q -- --clamd; then
    echo "GATEBOX_CLAMD_OPTIONS=--clamd external" >> "$root/etc/gatebox/run-options"
fi

in_root systemd-sysusers
# shellcheck disable=SC2046 # one unit name per word
in_root systemctl --quiet preset $(awk '$1 == "enable" || $1 == "disable" {print $2}' \
    "$root/usr/lib/systemd/system-preset/20-gatebox.preset")
in_root passwd -q -l root

# Read-only root: systemd makes up a machine id each boot until GRUB passes
# the stored one; logs live on /data; DNS comes from systemd-resolved.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
rm -rf "$root/var/log"
ln -s /data/log "$root/var/log"
mkdir -p "$root/data" "$root/mnt/boot"
rm -f "$root/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Dovecot's package made a key pair every image would share; the Mail Server
# SoftPak configures Dovecot with the box's own certificate from /data.
rm -f "$root/etc/dovecot/private/dovecot.key" "$root/etc/dovecot/private/dovecot.pem"

# Kernel: drop module trees an office gateway never loads, then a small
# initramfs holding just what finds and mounts the squashfs root.
kver=$(ls "$root/usr/lib/modules")
( cd "$root/usr/lib/modules/$kver/kernel" &&
  rm -rf sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband \
         drivers/staging drivers/iio drivers/comedi drivers/isdn drivers/bluetooth \
         drivers/target net/bluetooth net/wireless net/mac80211 arch/x86/kvm )
in_root depmod "$kver"
printf "MODULES=list\nCOMPRESS=gzip\n" > "$root/etc/initramfs-tools/conf.d/gatebox"
cat >> "$root/etc/initramfs-tools/modules" <<MODULES
squashfs
virtio_pci
virtio_mmio
virtio_blk
virtio_scsi
ahci
ata_piix
sd_mod
nvme
mmc_block
sdhci_pci
xhci_pci
usb_storage
uas
MODULES
in_root update-initramfs -u -k "$kver" >/dev/null
ln -sf "boot/vmlinuz-$kver" "$root/vmlinuz"
ln -sf "boot/initrd.img-$kver" "$root/initrd.img"

rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/"* "$root/var/cache/.[!.]"* 2>/dev/null || true
