#!/usr/bin/env bash
# Debian packages the image needs: the interpreter for both environments, the tools the launcher uses,
# and the shared libraries that PyQt5's wheels load.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"

packages=(
  python3 python3-venv            # the image's interpreter (bookworm: 3.11.2) for both environments
  systemd-sysv dbus locales       # init, and the locale cloud-init sets up
  cloud-init util-linux procps iproute2  # metadata queries, setpriv, ps, ss
  libgl1 libegl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libdbus-1-3  # PyQt5 wheels
)
log "installing: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
# cloud-init's locale module sets en_US.UTF-8; Debian's locale-gen builds only what locale.gen lists.
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen
locale-gen >/dev/null
