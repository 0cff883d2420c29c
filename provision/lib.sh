#!/usr/bin/env bash
# Shared helpers of the provisioning scripts (sourced, not run). Inputs come only from VISA_* variables:
#   VISA_TARGET          container | vm (where the two differ, this decides)
#   VISA_SPEC_DIR        folder with the pins, rendered config and service files (the build context's spec/)
#   VISA_WHEELHOUSE_URL  flat index of every locked wheel (the host's wheelhouse, served over HTTP)
#   VISA_WHEEL_BYTECODE  1: the wheelhouse's wheels carry bytecode compiled on the host (install it as is)
#   VISA_INSTALLER       uv | pip (from the wheelhouse) | pip-index (pip from VISA_INDEX_URL, trusting
#                        VISA_INDEX_CA when set: the package index inside the guest, as images were once built)
#   VISA_DEBIAN_STATE    digest of the Debian suites' InRelease files: a change reruns 45-debian-updates.sh only
set -euo pipefail

# shellcheck disable=SC2034  # used by the scripts that source this file
readonly VISA_JUPYTER_VENV=/opt/visa/jupyter/jupyterlab VISA_DATA_ANALYSIS_ENV=/opt/visa/envs/data-analysis

log() { printf '[visa-provision %s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

require_env() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || die "$name is not set (the build passes it; see provision/lib.sh)"
  done
}

# install_locked VENV PINS_FILE [LOCK_FILE]: create the venv with the image's python3 and install exactly the
# pinned versions (from the wheelhouse, or by the lock's hashes from the index for pip-index), bytecode compiled
# (the owner cannot write __pycache__ under /opt): by the installer, or already in the wheels. From the
# wheelhouse, wheels only and each checked against its hash in the wheelhouse's SHA256SUMS (hashed_pins),
# fetched once: nothing unlisted installs.
install_locked() {
  local venv=$1 pins=$2 lock=${3:-}
  require_env VISA_INSTALLER
  [[ $VISA_INSTALLER == pip-index ]] || require_env VISA_WHEELHOUSE_URL
  local uv_compile=(--compile-bytecode) pip_compile=() hashed sums
  hashed=$(mktemp) sums=$(mktemp)
  if [[ $VISA_INSTALLER != pip-index ]]; then
    fetch_sums "$sums"
    hashed_pins "$sums" "$pins" >"$hashed"
  fi
  if [[ ${VISA_WHEEL_BYTECODE:-0} == 1 ]]; then uv_compile=() pip_compile=(--no-compile); fi
  case "$VISA_INSTALLER" in
    uv)
      [[ -x "$venv/bin/python" ]] || python3 -m venv --without-pip "$venv"
      local uv_dir
      uv_dir=$(mktemp -d)  # private (0700), never a predictable path
      fetch_uv "$sums" "$uv_dir"
      "$uv_dir/uv" pip install --python "$venv/bin/python" --no-index --find-links "$VISA_WHEELHOUSE_URL" \
        --no-deps --no-build --require-hashes "${uv_compile[@]}" --link-mode copy --quiet -r "$hashed"
      rm -rf "$uv_dir"
      rm -f "$venv/.lock"  # uv's lock of the environment while it installs, left world-writable
      ;;
    pip)
      [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
      # Plain HTTP from the build's own wheelhouse (loopback, or visa-wheelhouse in a Docker build): every file
      # is checked by hash, so pip may trust the host.
      local host=${VISA_WHEELHOUSE_URL#*://}
      "$venv/bin/pip" install --no-index --find-links "$VISA_WHEELHOUSE_URL" --trusted-host "${host%%[:/]*}" \
        --no-deps "${pip_compile[@]}" --only-binary=:all: --require-hashes --disable-pip-version-check --no-input \
        --quiet -r "$hashed"
      ;;
    pip-index)
      # From the site's index, each file checked against the lock's hashes; wheels only, except the packages
      # the spec allows to build from source (VISA_BUILD_FROM_SOURCE, built here in the guest).
      require_env VISA_INDEX_URL
      [[ -f $lock ]] || die "install_locked: the pip-index installer needs the lock (hashes) of $pins"
      local cert=() from_source=()
      [[ -z ${VISA_INDEX_CA:-} ]] || cert=(--cert "$VISA_INDEX_CA")
      [[ -z ${VISA_BUILD_FROM_SOURCE:-} ]] || from_source=(--no-binary "$VISA_BUILD_FROM_SOURCE")
      [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
      "$venv/bin/pip" install --index-url "$VISA_INDEX_URL" "${cert[@]}" --no-deps --no-cache-dir \
        --only-binary=:all: "${from_source[@]}" --require-hashes --disable-pip-version-check --no-input \
        --quiet -r "$lock"
      ;;
    *) die "VISA_INSTALLER=$VISA_INSTALLER is not one of: uv, pip, pip-index" ;;
  esac
  rm -f "$hashed" "$sums"
  "$venv/bin/python" -m pip check >&2 || die "pip check failed in $venv"
}

# fetch_sums FILE: the wheelhouse's SHA256SUMS (the digest of every wheel it serves) into FILE.
fetch_sums() {
  python3 - "$VISA_WHEELHOUSE_URL" >"$1" <<'PY'
import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1] + "SHA256SUMS").read())
PY
}

# hashed_pins SUMS_FILE PINS_FILE: the pins, each with the sha256 of its wheel from the wheelhouse's SHA256SUMS
# (the host checked every wheel against the lock's hashes when it filled the wheelhouse). A pin without a wheel
# fails.
hashed_pins() {
  python3 - "$VISA_WHEELHOUSE_URL" "$1" "$2" <<'PY'
import re, sys
base, manifest, pins = sys.argv[1:4]
def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
sums = {}
for line in open(manifest).read().splitlines():
    digest, _, wheel = line.partition("  ")
    if not wheel.endswith(".whl"):
        continue
    name, version = wheel.split("-")[:2]
    sums.setdefault((norm(name), version), []).append(digest)
for line in open(pins).read().split():
    name, _, version = line.partition("==")
    digests = sums.get((norm(name), version))
    if not digests:
        sys.exit(f"{line} has no wheel in the wheelhouse {base}")
    print(line, *(f"--hash=sha256:{digest}" for digest in digests))
PY
}

# fetch_uv SUMS_FILE DIR: extract the uv binary of the wheelhouse's uv wheel into DIR (kept out of the image),
# after checking the wheel against the wheelhouse's SHA256SUMS (the host checked it against PyPI's hash).
fetch_uv() {
  python3 - "$VISA_WHEELHOUSE_URL" "$1" "$2" <<'PY'
import hashlib, io, sys, urllib.request, zipfile
base, manifest, dest = sys.argv[1:4]
sums = dict(reversed(line.split("  ", 1)) for line in open(manifest).read().splitlines())
names = [name for name in sums if name.startswith("uv-") and name.endswith(".whl")]
if len(names) != 1:
    sys.exit(f"the wheelhouse {base} lists {len(names)} uv wheels, not one")
data = urllib.request.urlopen(base + names[0]).read()
if hashlib.sha256(data).hexdigest() != sums[names[0]]:
    sys.exit(f"{names[0]} from {base} does not match the wheelhouse's SHA256SUMS: not run")
wheel = zipfile.ZipFile(io.BytesIO(data))
member = next(n for n in wheel.namelist() if n.endswith("/scripts/uv"))
with open(f"{dest}/uv", "wb") as binary:
    binary.write(wheel.read(member))
PY
  chmod 0700 "$2/uv"
}
