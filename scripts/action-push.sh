#!/usr/bin/env bash
# The push step of the oci-os GitHub Action (action.yml). Everything comes in
# through INPUT_* environment variables, never through the command line, and
# the password reaches oci-os on standard input only.
#
#   INPUT_REFERENCE   destination HOST/REPO:TAG (required)
#   INPUT_PAYLOADS    NAME=PATH, one per line (required)
#   INPUT_TAGS        more tags, separated by newlines, commas or spaces
#   INPUT_USERNAME    registry user (with INPUT_PASSWORD)
#   INPUT_PASSWORD    registry password or token
#   INPUT_GIT         "true": --git --annotate-git (provenance of the checkout)
#   INPUT_EXTRA_ARGS  more arguments, split on whitespace
#   OCI_OS_BIN        the CLI to run (default: bin/run.cjs next to this script)
# Writes digest=… and reference=… to $GITHUB_OUTPUT when it is set.
set -euo pipefail

bin="${OCI_OS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin/run.cjs}"
: "${INPUT_REFERENCE:?the reference input is required (HOST/REPO:TAG)}"

args=(push "$INPUT_REFERENCE")
payloads=0
while IFS= read -r line || [[ -n "$line" ]]; do
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line%"${line##*[![:space:]]}"}"
  [[ -z "$line" || "$line" == \#* ]] && continue
  args+=(--payload "$line")
  payloads=$((payloads + 1))
done <<< "${INPUT_PAYLOADS:-}"
if ((payloads == 0)); then
  echo "::error::the payloads input is empty: give NAME=PATH lines, e.g. system=out/rootfs.img" >&2
  exit 2
fi

for tag in ${INPUT_TAGS//,/ }; do
  args+=(--tag "$tag")
done

case "${INPUT_GIT:-false}" in
  true|True|TRUE|1|yes) args+=(--git --annotate-git) ;;
  false|False|FALSE|0|no|"") ;;
  *) echo "::error::the git input must be true or false" >&2; exit 2 ;;
esac

if [[ -n "${INPUT_EXTRA_ARGS:-}" ]]; then
  read -r -a extra <<< "${INPUT_EXTRA_ARGS//$'\n'/ }"
  args+=("${extra[@]}")
fi

digest_file="$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/oci-os-digest.XXXXXX")"
trap 'rm -f "$digest_file"' EXIT
args+=(--digest-file "$digest_file")

if [[ -n "${INPUT_PASSWORD:-}" ]]; then
  if [[ -z "${INPUT_USERNAME:-}" ]]; then
    echo "::error::a password was given without a username" >&2
    exit 2
  fi
  [[ -n "${GITHUB_ACTIONS:-}" ]] && echo "::add-mask::${INPUT_PASSWORD}"
  reference="$(printf '%s' "$INPUT_PASSWORD" | node "$bin" "${args[@]}" --username "$INPUT_USERNAME" --password-stdin)"
else
  reference="$(node "$bin" "${args[@]}" </dev/null)"
fi

digest="$(tr -d '[:space:]' < "$digest_file")"
echo "pushed ${reference}"
if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
  {
    echo "digest=${digest}"
    echo "reference=${reference}"
  } >> "$GITHUB_OUTPUT"
fi
