#!/usr/bin/env bash
# Installs the Debian packages of the programs listed in scripts/test-tools.txt
# that are missing, when we may install (root with apt-get). Without them,
# tests that need a tool skip locally and fail under CI=true.
set -u
list="$(dirname "$0")/test-tools.txt"
missing=() packages=()
while read -r tool package; do
  case "$tool" in ''|'#'*) continue ;; esac
  command -v "$tool" >/dev/null 2>&1 && continue
  missing+=("$tool")
  [[ " ${packages[*]} " == *" $package "* ]] || packages+=("$package")
done <"$list"
((${#missing[@]} == 0)) && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2 && apt-get install -y "${packages[@]}" >&2 || exit 1
else
  echo "note: missing ${missing[*]}; install the Debian packages ${packages[*]} (tests that need them skip, or fail under CI=true)" >&2
  [ "${CI:-}" = true ] && exit 1
fi
exit 0
