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
# The archive's digest: VISA_DEBIAN_STATE's first 16 characters (what follows, "-<tag>", only makes a new layer on
# the same archive: bench/nightly.py's Debian-only night).
state=${VISA_DEBIAN_STATE:0:16}
log "installing Debian updates (archive state $VISA_DEBIAN_STATE)"
export DEBIAN_FRONTEND=noninteractive
# The layer is cached by the state the build read, so it must hold that state's updates: apt must read the very
# InRelease files the build verified. A mirror behind a name of several hosts, or in the middle of a sync, may
# answer otherwise for a while; one that synced since the build read it needs a new build.
for attempt in 1 2 3; do
  if "${build_apt_get[@]}" update -q --error-on=any; then
    read_states=$(apt_states /var/lib/apt/lists "$codename")
    [[ -n $read_states ]] || die "apt read no InRelease of one of $codename, $codename-updates and $codename-security: \
the image's apt sources must name all three (the build's visa.mirror / visa.security_mirror)"
    grep -qxF "$state" <<<"$read_states" && break
    found="apt read the archive in state $(tr '\n' ' ' <<<"$read_states")but the build read it in state $state"
  else
    found="apt-get update failed"
  fi
  if [[ $attempt == 3 && $found == apt-get* ]]; then
    die "$found three times, 30 s apart (its errors are above): check that the image's apt sources answer (visa.mirror, \
visa.security_mirror, and any source a site layer adds)"
  elif [[ $attempt == 3 ]]; then
    die "$found (the mirror synced since, or answers with different syncs, or the image's apt sources are not \
the build's visa.mirror / visa.security_mirror). apt read:
$(apt_inreleases /var/lib/apt/lists)
Build again: it reads the archive anew."
  fi
  log "$found: asking again in 30 s"
  sleep 30
done
# --with-new-pkgs: a new kernel ABI comes as a new package; site config files are kept (confold).
"${build_apt_get[@]}" -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade --with-new-pkgs
"${build_apt_get[@]}" -y -q autoremove --purge
apt-get clean
rm -rf /var/lib/apt/lists/*
log "Debian packages up to date"
