#!/bin/sh
# Makes the development update-signing PKI in DIR (default build/keys/) when
# it is missing: a CA whose certificate is the image's RAUC keyring, and a
# signing certificate issued by it that `make bundle` signs with. The keys
# are made on the build machine and never committed; a production build
# brings its own CA certificate and signing key instead.
#
#   dev-keys.sh [DIR]   -> DIR/{ca.cert.pem,ca.key.pem,signing.cert.pem,signing.key.pem}
set -eu
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/keys}
name=${GATEBOX_KEYS_NAME:-gatebox development}
[ -f "$dir/ca.cert.pem" ] && [ -f "$dir/signing.key.pem" ] && exit 0
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# RAUC verifies the signer like OpenSSL's S/MIME check: the CA must say it
# signs certificates (below), the signer that it makes signatures.
cat > "$tmp/ext.cnf" <<CNF
[signer]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
( umask 077
  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key.pem"
  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/signing.key.pem" )
openssl req -new -x509 -days 3650 -key "$dir/ca.key.pem" -subj "/O=$name/CN=$name update CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.cert.pem"
openssl req -new -key "$dir/signing.key.pem" -subj "/O=$name/CN=$name update signing" \
    -out "$tmp/signing.csr"
openssl x509 -req -days 3650 -in "$tmp/signing.csr" -CA "$dir/ca.cert.pem" -CAkey "$dir/ca.key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -extfile "$tmp/ext.cnf" -extensions signer \
    -out "$dir/signing.cert.pem" 2>/dev/null
echo "update signing keys in $dir"
