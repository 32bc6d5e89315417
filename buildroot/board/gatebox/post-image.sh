#!/bin/sh
# Post-image: the boot partition's files and the disk, with the genimage
# layout shared with the QEMU image (qemu/build-image.sh).
set -eu
board=$(dirname "$0")
case "$BR2_ARCH" in
    x86_64)  arch=x86_64 console=ttyS0,115200 ;;
    aarch64) arch=aarch64 console=ttyAMA0
             cp "$BINARIES_DIR/efi-part/EFI/BOOT/bootaa64.efi" "$BINARIES_DIR/bootaa64.efi" ;;
    *) echo "post-image: unsupported architecture $BR2_ARCH" >&2; exit 1 ;;
esac
sed "s/@CONSOLE@/$console/" "$board/grub.cfg" > "$BINARIES_DIR/grub.cfg"
rm -f "$BINARIES_DIR/grubenv"
python3 "$BR2_EXTERNAL_GATEBOX_PATH/../rootfs-overlay/usr/lib/gatebox/bootenv.py" "$BINARIES_DIR/grubenv" \
    ORDER="A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0 >/dev/null
support/scripts/genimage.sh -c "$board/genimage-$arch.cfg"
