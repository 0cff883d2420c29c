#!/usr/bin/env bash
# Debian packages the image needs (provision/packages.txt): the interpreter for both environments, the
# tools the launcher uses, and the shared libraries that PyQt5's wheels load. Only missing ones are
# installed, so a base that carries them (visa-build's own) skips apt entirely.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"

read -r -a packages <<<"$(sed 's/#.*//' "$(dirname "$0")/packages.txt" | tr '\n' ' ')"
# What is installed, by name and by what it provides (Ubuntu 24.04's libglib2.0-0t64 provides libglib2.0-0).
declare -A present=()
while read -r name; do present[$name]=1; done < <(
  dpkg-query -W -f '${db:Status-Abbrev}|${Package}|${Provides}\n' |
    awk -F'|' '$1 ~ /^ii/ { print $2; n = split($3, p, ", "); for (i = 1; i <= n; i++) { sub(/ .*/, "", p[i]); if (p[i] != "") print p[i] } }'
)
missing=()
for package in "${packages[@]}"; do
  [[ -n "${present[$package]:-}" ]] || missing+=("$package")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
else
  log "all ${#packages[@]} packages are installed already"
fi
# cloud-init's locale module sets en_US.UTF-8; Debian's locale-gen builds only what locale.gen lists.
if ! locale -a 2>/dev/null | grep -qx 'en_US.utf8'; then
  sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
  locale-gen >/dev/null
fi
