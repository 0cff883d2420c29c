#!/usr/bin/env bash
# Debian's updates and security updates (the -updates and -security suites in sources.list) over everything
# installed before: the image's thin last layer, rebuilt when the archive changed (VISA_DEBIAN_STATE is a
# digest of the suites' InRelease files) without reinstalling the Python environments.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=provision/apt-state.sh
source "$(dirname "$0")/apt-state.sh"
require_env VISA_DEBIAN_STATE

# apt as the build runs it: through the build's proxy (visa.proxy) or none, never the instance's (42-site-settings.sh)
build_apt_get=(apt-get -o Acquire::http::Proxy="${http_proxy:-DIRECT}" -o Acquire::https::Proxy="${https_proxy:-DIRECT}")

# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
log "installing Debian updates (archive state $VISA_DEBIAN_STATE)"
export DEBIAN_FRONTEND=noninteractive
# The layer is cached by the state the build read, so it must hold that state's updates: apt must read the very
# InRelease files the build verified. A mirror behind a name of several hosts may answer with another sync for a
# while; one that synced since the build read it needs a new build.
for attempt in 1 2 3; do
  "${build_apt_get[@]}" update -q
  read_state=$(apt_state /var/lib/apt/lists "$codename")
  [[ $read_state == "$VISA_DEBIAN_STATE" ]] && break
  if [[ $attempt == 3 ]]; then
    die "apt read the archive in state ${read_state:-unknown}, but the build read it in state $VISA_DEBIAN_STATE \
(the mirror synced since, or answers with different syncs, or the image's apt sources are not the build's \
visa.mirror / visa.security_mirror). apt read:
$(apt_inreleases /var/lib/apt/lists)
Build again: it reads the archive anew."
  fi
  log "apt read the archive in state ${read_state:-unknown}, not $VISA_DEBIAN_STATE as the build did: asking again in 20 s"
  sleep 20
done
# --with-new-pkgs: a new kernel ABI comes as a new package; site config files are kept (confold).
"${build_apt_get[@]}" -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade --with-new-pkgs
"${build_apt_get[@]}" -y -q autoremove --purge
apt-get clean
rm -rf /var/lib/apt/lists/*
log "Debian packages up to date"
