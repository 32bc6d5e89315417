#!/bin/sh
# Exits 0 when this machine can run arm64 programs (binfmt_misc with
# qemu-aarch64), which mmdebstrap needs for arm64 maintainer scripts.
[ -d /proc/sys/fs/binfmt_misc ] && [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    exit 0
fi
echo "this machine cannot run arm64 programs (no binfmt_misc qemu-aarch64): no aarch64 image" >&2
exit 1
