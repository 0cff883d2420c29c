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

# install_locked VENV PINS_FILE: create the venv with the image's python3 and install exactly the pinned
# versions (from the wheelhouse, or the index for pip-index), bytecode compiled (the owner cannot write
# __pycache__ under /opt): by the installer, or already in the wheels.
install_locked() {
  local venv=$1 pins=$2
  require_env VISA_INSTALLER
  [[ $VISA_INSTALLER == pip-index ]] || require_env VISA_WHEELHOUSE_URL
  local uv_compile=(--compile-bytecode) pip_compile=()
  if [[ ${VISA_WHEEL_BYTECODE:-0} == 1 ]]; then uv_compile=() pip_compile=(--no-compile); fi
  case "$VISA_INSTALLER" in
    uv)
      [[ -x "$venv/bin/python" ]] || python3 -m venv --without-pip "$venv"
      "$(visa_uv)" pip install --python "$venv/bin/python" --no-index --find-links "$VISA_WHEELHOUSE_URL" \
        --no-deps "${uv_compile[@]}" --link-mode copy --quiet -r "$pins"
      rm -f "$venv/.lock"  # uv's lock of the environment while it installs, left world-writable
      ;;
    pip)
      [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
      "$venv/bin/pip" install --no-index --find-links "$VISA_WHEELHOUSE_URL" --no-deps "${pip_compile[@]}" \
        --disable-pip-version-check --no-input --quiet -r "$pins"
      ;;
    pip-index)
      require_env VISA_INDEX_URL
      local cert=()
      [[ -z ${VISA_INDEX_CA:-} ]] || cert=(--cert "$VISA_INDEX_CA")
      [[ -x "$venv/bin/pip" ]] || python3 -m venv "$venv"
      "$venv/bin/pip" install --index-url "$VISA_INDEX_URL" "${cert[@]}" --no-deps --no-cache-dir \
        --disable-pip-version-check --no-input --quiet -r "$pins"
      ;;
    *) die "VISA_INSTALLER=$VISA_INSTALLER is not one of: uv, pip, pip-index" ;;
  esac
  "$venv/bin/python" -m pip check >&2 || die "pip check failed in $venv"
}

# visa_uv: path of a uv binary taken from the wheelhouse's uv wheel (kept out of the image).
visa_uv() {
  local dir=/tmp/visa-uv
  if [[ ! -x $dir/uv ]]; then
    mkdir -p "$dir"
    python3 - "$VISA_WHEELHOUSE_URL" "$dir" <<'PY'
import html.parser, io, sys, urllib.request, zipfile
base, dest = sys.argv[1], sys.argv[2]
class Links(html.parser.HTMLParser):
    names = []
    def handle_starttag(self, tag, attrs):
        self.names += [v for k, v in attrs if k == "href" and v.startswith("uv-") and v.endswith(".whl")]
page = Links(); page.feed(urllib.request.urlopen(base).read().decode())
if not page.names:
    sys.exit(f"no uv wheel in the wheelhouse {base}")
wheel = zipfile.ZipFile(io.BytesIO(urllib.request.urlopen(base + page.names[0]).read()))
member = next(n for n in wheel.namelist() if n.endswith("/scripts/uv"))
open(f"{dest}/uv", "wb").write(wheel.read(member))
PY
    chmod 0755 "$dir/uv"
  fi
  echo "$dir/uv"
}
