#!/usr/bin/env bash
# Installs the Debian packages the test suite talks to (the CNCF registry,
# skopeo, umoci, zstd, openssl) when they are missing and we may install.
# Without them, tests that need a tool skip locally and fail under CI=true.
set -u
missing=()
for tool in docker-registry skopeo umoci zstd openssl getfattr; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2 && apt-get install -y docker-registry skopeo umoci zstd openssl attr >&2
else
  echo "note: missing ${missing[*]}; install the Debian packages docker-registry skopeo umoci zstd openssl attr (tests that need them skip, or fail under CI=true)" >&2
fi
exit 0
