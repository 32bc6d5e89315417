#!/usr/bin/env bash
# Builds build/gatebox-<arch>-<version>.raucb, a signed RAUC update bundle of
# the image's root slot (build/<arch>/images/rootfs.squashfs, kept by
# build-image.sh), signed with build/keys/ (qemu/dev-keys.sh makes them when
# missing; a production build passes its own with GATEBOX_SIGNING_CERT/KEY).
#
#   GATEBOX_BUNDLE_VERSION=0.2.0   stamp another version into the root
#                                  (/etc/gatebox/version), e.g. a "newer" build
#   GATEBOX_BUNDLE_CUSTOMIZE=FILE  run FILE with the unpacked root as $1 before
#                                  repacking (tests: a root whose services fail)
set -euo pipefail
arch=${1:-x86_64}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$top/build/$arch
squashfs=$work/images/rootfs.squashfs
[ -f "$squashfs" ] || { echo "no $squashfs: run \`make image\` first" >&2; exit 1; }

"$top/qemu/dev-keys.sh" "$top/build/keys" >/dev/null
cert=${GATEBOX_SIGNING_CERT:-$top/build/keys/signing.cert.pem}
key=${GATEBOX_SIGNING_KEY:-$top/build/keys/signing.key.pem}
image_version=$(unsquashfs -cat "$squashfs" etc/gatebox/version 2>/dev/null ||
                ${PYTHON:-python3} -c 'import sys; sys.path.insert(0, sys.argv[1]); import firmware; print(firmware.__version__)' "$top")
version=${GATEBOX_BUNDLE_VERSION:-$image_version}

content=$work/bundle-content
rm -rf "$content" && mkdir -p "$content"
trap 'rm -rf "$content" "$work/bundle-root"' EXIT
if [ "$version" != "$image_version" ] || [ -n "${GATEBOX_BUNDLE_CUSTOMIZE:-}" ]; then
    # Another version or a changed root: unpack, change, pack as build-image.sh does.
    rm -rf "$work/bundle-root"
    unsquashfs -quiet -no-progress -d "$work/bundle-root" "$squashfs"
    mkdir -p "$work/bundle-root/etc/gatebox"
    echo "$version" > "$work/bundle-root/etc/gatebox/version"
    if [ -n "${GATEBOX_BUNDLE_CUSTOMIZE:-}" ]; then "$GATEBOX_BUNDLE_CUSTOMIZE" "$work/bundle-root"; fi
    mksquashfs "$work/bundle-root" "$content/rootfs.img" -comp gzip -Xcompression-level 6 \
        -noappend -quiet -no-progress
else
    cp "$squashfs" "$content/rootfs.img"
fi
# The compatible string names the architecture: a box refuses another's bundle.
cat > "$content/manifest.raucm" <<MANIFEST
[update]
compatible=gatebox-$arch
version=$version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.img
MANIFEST
out=$top/build/gatebox-$arch-$version.raucb
rm -f "$out"
rauc bundle --cert "$cert" --key "$key" "$content" "$out" 2> >(grep -v "skipping signature verification" >&2)
echo "built ${out#"$top"/} (version $version, compatible gatebox-$arch)"
