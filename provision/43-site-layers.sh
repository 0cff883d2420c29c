#!/usr/bin/env bash
# The site's layers of the image (image.toml [layers], laid out in spec/layers/ by the build). One step per call,
# each its own Docker layer; with no argument (an in-guest build) every step, in this order:
#   packages       the distribution packages of packages.txt and the .debs of debs/ (apt resolves their
#                  dependencies; the build checked each .deb's sha256 against the spec)
#   overlay        overlay/ copied onto /, owned by root: files 0644 (0755 when executable), folders 0755, and
#                  the modes of overlay-modes.txt
#   script NAME    scripts/NAME run as root; its failure stops the build, naming it
#   hooks          hooks/ installed with visa-site-hooks.service, which runs them once per instance id at boot
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR
layers="$VISA_SPEC_DIR/layers"
files="$(dirname "$0")/files/site"
# What the image holds of the layers, for its manifest and SBOM: "<sha256> <kind> <name>" per line.
readonly RECORD=/usr/share/visa/site-layers.sha256

record() {  # record KIND NAME FILE
  install -d -m 0755 "${RECORD%/*}"
  printf '%s %s %s\n' "$(sha256sum <"$3" | cut -d' ' -f1)" "$1" "$2" >>"$RECORD"
}

# apt as the build runs it: through the build's proxy (visa.proxy) or none, never the instance's (42-site-settings.sh)
build_apt_get=(apt-get -o Acquire::http::Proxy="${http_proxy:-DIRECT}" -o Acquire::https::Proxy="${https_proxy:-DIRECT}")

packages() {
  local names debs
  mapfile -t names < <(grep -v '^$' "$layers/packages.txt" || true)
  shopt -s nullglob
  debs=("$layers"/debs/*.deb)
  ((${#names[@]} + ${#debs[@]})) || return 0
  log "installing site packages: ${names[*]} ${debs[*]##*/}"
  export DEBIAN_FRONTEND=noninteractive
  "${build_apt_get[@]}" update -qq
  "${build_apt_get[@]}" install -y -qq --no-install-recommends "${names[@]}" "${debs[@]}" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  local deb
  for deb in "${debs[@]}"; do record deb "${deb##*/}" "$deb"; done
}

overlay() {
  local source="$layers/overlay" mode path
  [[ -n $(ls -A "$source") ]] || return 0
  # Never through a symlink planted in the image: each target path is checked before it is written.
  while IFS= read -r -d '' path; do
    [[ ! -L /$path ]] || die "overlay: /$path is a symlink in the image; the overlay does not write through it"
    if [[ -d $source/$path ]]; then
      install -d -o root -g root -m 0755 "/$path"
    else
      mode=0644
      [[ ! -x $source/$path ]] || mode=0755
      install -o root -g root -m "$mode" "$source/$path" "/$path"
      record overlay "/$path" "/$path"
    fi
  done < <(cd "$source" && find . -mindepth 1 -printf '%P\0' | sort -z)
  while read -r mode path; do
    [[ -n $path ]] || continue
    chmod "$mode" "/$path"
  done <"$layers/overlay-modes.txt"
  log "overlay: $(cd "$source" && find . -type f | wc -l) file(s) copied onto /"
}

script() {
  local name=$1 code=0
  log "running site script $name"
  chmod 0755 "$layers/scripts/$name"  # an in-guest build's upload may not keep the executable bit
  (cd / && "$layers/scripts/$name") || code=$?
  ((code == 0)) || die "site script $name failed (exit $code); the build stops and publishes nothing"
  record script "$name" "$layers/scripts/$name"
}

hooks() {
  install -d -m 0755 /etc/visa/boot-hooks.d /usr/local/lib/visa
  install -m 0755 "$layers"/hooks/* /etc/visa/boot-hooks.d/
  local hook
  for hook in /etc/visa/boot-hooks.d/*; do record hook "${hook##*/}" "$hook"; done
  install -m 0755 "$files/visa-site-hooks" /usr/local/lib/visa/visa-site-hooks
  install -m 0644 "$files/visa-site-hooks.service" /etc/systemd/system/visa-site-hooks.service
  systemctl enable visa-site-hooks.service >/dev/null 2>&1
  log "boot hooks: $(find /etc/visa/boot-hooks.d -type f -printf '%f ' | sort)"
}

case ${1:-all} in
  packages | overlay | hooks) "$1" ;;
  script) script "$2" ;;
  all)
    packages
    overlay
    shopt -s nullglob
    for path in "$layers"/scripts/*; do script "${path##*/}"; done
    hook_files=("$layers"/hooks/*)
    ((${#hook_files[@]} == 0)) || hooks
    ;;
  *) die "unknown step $1 (packages, overlay, script NAME, hooks)" ;;
esac
