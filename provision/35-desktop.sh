#!/usr/bin/env bash
# The remote desktop VISA activates an instance by (image.toml [desktop]): xrdp on 3389 with an XFCE session,
# guacd on 4822 on every address (VISA's API connects to <instance ip>:4822), VISA's token login for the RDP
# session, the instance's public key and keyboard layout from its metadata at every boot, and clock sync for
# the token's 60 s window. Nothing happens when the spec has no [desktop].
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR

if [[ -z ${VISA_DESKTOP:-} ]]; then
  log "no [desktop] in the spec: no remote desktop layer"
  exit 0
fi
[[ $VISA_DESKTOP == xfce ]] || die "VISA_DESKTOP=$VISA_DESKTOP is not a session this image knows (xfce)"
files="$(dirname "$0")/files/desktop"
export DEBIAN_FRONTEND=noninteractive
packages=(xrdp xorgxrdp xfce4-session xfwm4 xfce4-panel xfdesktop4 xfce4-terminal xfce4-settings thunar
  dbus-x11 x11-xkb-utils xauth systemd-timesyncd openssl)
if [[ -n ${VISA_GUACD_DEB:-} ]]; then
  log "guacd from the site's package $(basename "$VISA_GUACD_DEB")"
  packages+=("$VISA_GUACD_DEB")
else
  packages+=(guacd libguac-client-rdp0t64) # RDP support is its own package (a Recommends)
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
apt-get clean
rm -rf /var/lib/apt/lists/*
log "installed xrdp $(dpkg-query -W -f '${Version}' xrdp), guacd $(dpkg-query -W -f '${Version}' guacd)"

# guacd listens on every address: VISA's API server connects to the instance's own address. Ubuntu's unit
# passes the address from /etc/default/guacd (loopback there) on the command line, over guacd.conf.
install -D -m 0644 "$files/guacd.conf" /etc/guacamole/guacd.conf
if [[ -f /etc/default/guacd ]]; then
  sed -i 's/^LISTEN_ADDRESS=.*/LISTEN_ADDRESS=0.0.0.0/' /etc/default/guacd
fi
# VISA token login: the RDP password is "<user>,<unix seconds>;<base64 SHA256withRSA signature>".
install -D -m 0755 "$files/visa-token-check" /usr/local/lib/visa/visa-token-check
install -D -m 0644 "$files/xrdp-sesman.pam" /etc/pam.d/xrdp-sesman
# The session: the keyboard layout from the metadata, then XFCE.
install -D -m 0755 "$files/visa-session" /usr/local/lib/visa/visa-session
install -D -m 0755 "$files/visa-session" /etc/xrdp/startwm.sh
# At every boot: /etc/visa/public.pem from pamPublicKey, /etc/visa/keyboard from keyboardLayout.
install -D -m 0755 "$files/visa-desktop-metadata" /usr/local/lib/visa/visa-desktop-metadata
install -D -m 0644 "$files/visa-desktop-metadata.service" /etc/systemd/system/visa-desktop-metadata.service
# xrdp's TLS key is the instance's own, made at its first boot (like ssh host keys), never the image's.
rm -f /etc/xrdp/key.pem /etc/xrdp/cert.pem
# xrdp runs as its own user and cannot create its log: it is made at every boot (image cleanup deletes logs).
install -D -m 0644 "$files/visa-xrdp.tmpfiles" /etc/tmpfiles.d/visa-xrdp.conf
systemctl enable visa-desktop-metadata.service xrdp.service guacd.service systemd-timesyncd.service >/dev/null
log "remote desktop: xrdp on 3389, guacd on 4822, VISA token login, XFCE"
