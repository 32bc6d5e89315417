#!/usr/bin/env bash
# Checks this BR2_EXTERNAL tree against a Buildroot source tree (it cannot be
# built here: Buildroot downloads every source):
#   1. each defconfig line survives `make <name>_defconfig`: the resulting
#      .config has it unchanged (a misspelt or unmet option silently vanishes);
#   2. each external package passes Buildroot's utils/check-package.
# Usage: buildroot/check.sh BUILDROOT_SOURCE_DIR
# The Buildroot tree is only read; output goes to a temporary directory.
# check-package needs python3-magic, python3-flake8 and shellcheck (Debian).
set -euo pipefail
src=$(cd "${1:?usage: $0 BUILDROOT_SOURCE_DIR}" && pwd)
external=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0

for defconfig in "$external"/configs/*_defconfig; do
    name=$(basename "$defconfig")
    out="$scratch/${name%_defconfig}"
    make -s -C "$src" O="$out" BR2_EXTERNAL="$external" "$name" >"$out.log" 2>&1 ||
        { echo "FAIL $name: make $name"; cat "$out.log"; failures=$((failures + 1)); continue; }
    missing=0
    while IFS= read -r line; do
        if ! grep -qxF -- "$line" "$out/.config"; then
            echo "FAIL $name: not in .config: $line"
            missing=$((missing + 1))
        fi
    done < <(grep -E '^(BR2_|# BR2_.* is not set)' "$defconfig")
    total=$(grep -cE '^(BR2_|# BR2_.* is not set)' "$defconfig")
    if [ "$missing" -eq 0 ]; then
        echo "ok   $name: all $total lines kept in .config"
    fi
    failures=$((failures + missing))
done

packages=$(cd "$external" && find package -name Config.in -o -name '*.mk' -o -name '*.hash' | sort)
if (cd "$external" && "${CHECK_PACKAGE_PYTHON:-/usr/bin/python3}" "$src/utils/check-package" -b $packages Config.in external.mk \
        board/gatebox/*.sh) >"$scratch/check-package.log" 2>&1; then
    echo "ok   check-package: $(tail -1 "$scratch/check-package.log")"
else
    echo "FAIL check-package:"; cat "$scratch/check-package.log"
    failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] && echo "buildroot check passed against Buildroot $(make -s -C "$src" print-version)"
exit $(( failures > 0 ))
