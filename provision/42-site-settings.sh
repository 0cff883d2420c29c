#!/usr/bin/env bash
# The site's settings of the image (image.toml [site], rendered to spec/site/): the time zone, the default
# keyboard layout (the console's, and the desktop's when the metadata names none), chrony's NTP servers, the
# CA certificates the image trusts and the instances' HTTP proxy. An empty setting leaves the distribution's
# default.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR
site="$VISA_SPEC_DIR/site"
# shellcheck source=/dev/null
source "$site/site.env"

missing=()
[[ -z $VISA_SITE_TIMEZONE || -e /usr/share/zoneinfo/zone1970.tab ]] || missing+=(tzdata)
[[ -z $VISA_SITE_NTP_SERVERS ]] || command -v chronyd >/dev/null || missing+=(chrony)
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
fi

if [[ -n $VISA_SITE_TIMEZONE ]]; then
  [[ -f /usr/share/zoneinfo/$VISA_SITE_TIMEZONE ]] || die "the image's tzdata has no zone $VISA_SITE_TIMEZONE"
  ln -sfn "/usr/share/zoneinfo/$VISA_SITE_TIMEZONE" /etc/localtime
  # /etc/timezone where the release still has one (Debian 12, Ubuntu 24.04; Debian 13 dropped it)
  [[ ! -e /etc/timezone ]] || printf '%s\n' "$VISA_SITE_TIMEZONE" >/etc/timezone
  log "time zone $VISA_SITE_TIMEZONE"
fi

if [[ -n $VISA_SITE_KEYBOARD ]]; then
  # VISA's <language>-<country>-<kind> and its XKB layout and variant (render.site_files); the desktop's default
  # when the metadata has no keyboardLayout (visa-desktop-metadata).
  printf 'XKBMODEL=pc105\nXKBLAYOUT=%s\nXKBVARIANT=%s\nXKBOPTIONS=\nBACKSPACE=guess\n' \
    "$VISA_SITE_XKB_LAYOUT" "$VISA_SITE_XKB_VARIANT" >/etc/default/keyboard
  install -d -m 0755 /etc/visa
  printf '%s\n' "$VISA_SITE_KEYBOARD" >/etc/visa/keyboard-default
  log "default keyboard layout $VISA_SITE_KEYBOARD (XKB $VISA_SITE_XKB_LAYOUT${VISA_SITE_XKB_VARIANT:+ $VISA_SITE_XKB_VARIANT})"
fi

if [[ -n $VISA_SITE_NTP_SERVERS ]]; then
  # The site's servers instead of the distribution's pool (which instances often cannot reach).
  sed -i 's/^\(pool\|server\) /#&/' /etc/chrony/chrony.conf
  grep -q '^sourcedir /etc/chrony/sources.d' /etc/chrony/chrony.conf ||
    echo 'sourcedir /etc/chrony/sources.d' >>/etc/chrony/chrony.conf
  install -d /etc/chrony/sources.d
  for server in $VISA_SITE_NTP_SERVERS; do printf 'server %s iburst\n' "$server"; done \
    >/etc/chrony/sources.d/visa-site.sources
  systemctl enable chrony.service >/dev/null 2>&1 || true
  log "NTP servers (chrony): $VISA_SITE_NTP_SERVERS"
fi

shopt -s nullglob
certificates=("$site"/ca/*.crt)
if ((${#certificates[@]})); then
  install -d /usr/local/share/ca-certificates
  install -m 0644 "${certificates[@]}" /usr/local/share/ca-certificates/
  update-ca-certificates >/dev/null
  log "${#certificates[@]} site CA certificate(s) added to the system's trust store"
fi

if [[ -n $VISA_SITE_PROXY ]]; then
  # The instances' proxy: logins and desktop sessions (/etc/environment, read by pam_env), apt, and JupyterLab
  # with its kernels (visa-jupyter-launch reads /etc/visa/site-proxy.env), so `%pip install` works behind it.
  # The build's own apt calls after this step override apt's setting (43-site-layers.sh, 45-debian-updates.sh).
  install -d -m 0755 /etc/visa
  for name in http_proxy https_proxy HTTP_PROXY HTTPS_PROXY; do printf '%s=%s\n' "$name" "$VISA_SITE_PROXY"; done \
    >/etc/visa/site-proxy.env
  printf 'no_proxy=%s\nNO_PROXY=%s\n' "$VISA_SITE_NO_PROXY" "$VISA_SITE_NO_PROXY" >>/etc/visa/site-proxy.env
  sed -i '/^\(http\|https\|no\|HTTP\|HTTPS\|NO\)_\(proxy\|PROXY\)=/d' /etc/environment
  cat /etc/visa/site-proxy.env >>/etc/environment
  printf 'Acquire::http::Proxy "%s";\nAcquire::https::Proxy "%s";\n' "$VISA_SITE_PROXY" "$VISA_SITE_PROXY" \
    >/etc/apt/apt.conf.d/95visa-site-proxy
  log "instance proxy $VISA_SITE_PROXY (not for: $VISA_SITE_NO_PROXY)"
fi
