#!/usr/bin/env bash
# Debian's updates and security updates (the -updates and -security suites in sources.list) over everything
# installed before: the image's thin last layer, rebuilt when the archive changed (VISA_DEBIAN_STATE is a
# digest of the suites' InRelease files) without reinstalling the Python environments.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_DEBIAN_STATE

# apt as the build runs it: through the build's proxy (visa.proxy) or none, never the instance's (42-site-settings.sh)
build_apt_get=(apt-get -o Acquire::http::Proxy="${http_proxy:-DIRECT}" -o Acquire::https::Proxy="${https_proxy:-DIRECT}")

log "installing Debian updates (archive state $VISA_DEBIAN_STATE)"
export DEBIAN_FRONTEND=noninteractive
"${build_apt_get[@]}" update -q
# --with-new-pkgs: a new kernel ABI comes as a new package; site config files are kept (confold).
"${build_apt_get[@]}" -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade --with-new-pkgs
"${build_apt_get[@]}" -y -q autoremove --purge
apt-get clean
rm -rf /var/lib/apt/lists/*
log "Debian packages up to date"
