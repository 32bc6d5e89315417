#!/usr/bin/env bash
# Builds build/gatebox-<arch>.img (x86_64 or aarch64) from Debian bookworm
# packages: mmdebstrap makes the root (customize-rootfs.sh adds the project),
# mksquashfs makes slot A, genimage writes the disk with the same layout as
# the Buildroot build (buildroot/board/gatebox/genimage-<arch>.cfg).
# Needs root (mmdebstrap's root mode); aarch64 also needs binfmt qemu-aarch64.
set -euo pipefail
arch=${1:-x86_64}
top=$(cd "$(dirname "$0")/.." && pwd)
board=$top/buildroot/board/gatebox
work=$top/build/$arch
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
python=${PYTHON:-python3}

case $arch in
    x86_64)  deb_arch=amd64 kernel=linux-image-amd64 console=ttyS0,115200 ;;
    aarch64) deb_arch=arm64 kernel=linux-image-arm64 console=ttyAMA0 ;;
    *) echo "unknown architecture: $arch" >&2; exit 2 ;;
esac

step() { printf '%s [%4ss] %s\n' "$(date +%T)" "$SECONDS" "$*"; }

rm -rf "$work"
mkdir -p "$work/wheels" "$work/images" "$work/genimage-root"

step "wheels of the project and its dependencies"
"$python" -m pip wheel -q --disable-pip-version-check --wheel-dir "$work/wheels" "$top" \
    2> >(grep -v "is ignored" >&2)
if [ "$arch" != x86_64 ]; then
    # The compiled dependencies for the target: binary wheels from the index,
    # fetched here (the new root has no network trust of its own).
    mkdir -p "$work/wheels-host"
    mv "$work/wheels"/*.whl "$work/wheels-host/"
    mv "$work/wheels-host"/*-none-any.whl "$work/wheels/"
    "$python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
        --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
        --python-version 3.11 --implementation cp --find-links "$work/wheels" -d "$work/wheels" gatebox \
        2> >(grep -v "is ignored" >&2)
fi

step "license signing key the image trusts"
# A production build names the vendor's public key; otherwise a development
# key pair is made once in build/keys/ (never committed), so tests and
# developers can issue license keys this image accepts.
vendor_pub=${GATEBOX_VENDOR_PUBKEY:-}
if [ -z "$vendor_pub" ]; then
    keys=$top/build/keys
    if [ ! -f "$keys/vendor-dev.key" ]; then
        mkdir -p "$keys"
        ( umask 077 && openssl genpkey -algorithm ed25519 -out "$keys/vendor-dev.key" )
        openssl pkey -in "$keys/vendor-dev.key" -pubout -out "$keys/vendor-dev.pub"
    fi
    vendor_pub=$keys/vendor-dev.pub
fi
cp "$vendor_pub" "$work/vendor.pub"

step "root filesystem (mmdebstrap, Debian bookworm $deb_arch)"
packages=$(grep -v '^#' "$top/qemu/packages.txt" | tr '\n' ' ')
# Docs, man pages and translations are never read on the box.
mmdebstrap --quiet --variant=apt --architectures="$deb_arch" \
    --include="$kernel ${packages// /,}" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --essential-hook="'$top/qemu/essential-hook.sh' \"\$1\"" \
    --customize-hook="'$top/qemu/customize-rootfs.sh' \"\$1\" $arch '$work/wheels' '$top'" \
    bookworm "$work/rootfs" "$mirror"

step "slot A (squashfs)"
# gzip: GRUB 2.06 reads squashfs only with gzip, xz or lzo, and gzip unpacks
# faster than xz on a slow (emulated) CPU; level 6 packs nearly as tight as 9 in
# a fraction of the time.
mksquashfs "$work/rootfs" "$work/images/rootfs.squashfs" -comp gzip -Xcompression-level 6 \
    -noappend -quiet -no-progress

step "boot loader"
sed "s/@CONSOLE@/$console/" "$board/grub.cfg" > "$work/images/grub.cfg"
"$python" "$top/rootfs-overlay/usr/lib/gatebox/bootenv.py" "$work/images/grubenv" \
    ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0 >/dev/null
modules="part_msdos fat squash4 gzio normal linux test loadenv regexp echo configfile serial terminal"
if [ "$arch" = x86_64 ]; then
    cp /usr/lib/grub/i386-pc/boot.img "$work/images/boot.img"
    grub-mkimage -O i386-pc -o "$work/images/grub.img" -p '(hd0,msdos1)/grub' biosdisk $modules
else
    grub-mkimage -O arm64-efi -d "$work/grub-arm64/usr/lib/grub/arm64-efi" \
        -o "$work/images/bootaa64.efi" -p /grub $modules
fi

step "disk image (genimage)"
rm -rf "$work/genimage-tmp"
genimage --config "$board/genimage-$arch.cfg" --inputpath "$work/images" \
    --outputpath "$work/images" --rootpath "$work/genimage-root" --tmppath "$work/genimage-tmp" 2>/dev/null
# genimage stops the file at the last partition holding data; the disk must
# reach the end of the data partition (a sparse tail costs nothing).
end=$(sfdisk --json "$work/images/gatebox-$arch.img" |
      "$python" -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]["partitions"]; print(max(x["start"]+x["size"] for x in p)*512)')
truncate -s "$end" "$work/images/gatebox-$arch.img"
mv "$work/images/gatebox-$arch.img" "$top/build/gatebox-$arch.img"
rm -rf "$work/rootfs" "$work/genimage-tmp"
step "built build/gatebox-$arch.img"
