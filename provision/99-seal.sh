#!/usr/bin/env bash
# Packer's shutdown command: remove the build user (who runs this through sudo), its sudo rule and the
# build context, and what the build boot wrote about itself (login records, journal, random seed, DHCP
# lease), return freed blocks to the disk so the qcow2 stays small, then power off.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"

build_user=${SUDO_USER:-}
[[ -n $build_user && $build_user != root ]] || die "run through sudo by the build user (SUDO_USER=$build_user)"
log "removing build user $build_user and /opt/visa/build"
userdel --force --remove "$build_user" 2>/dev/null || userdel --force --remove "$build_user"
rm -f /etc/sudoers.d/90-cloud-init-users
rm -rf /opt/visa/build
log "removing the build boot's login records, journal, random seed and DHCP lease"
# Stopped first, as they would write again at power-off: the shutdown record, the saved seed, the journal.
# (Debian 13's systemd keeps no utmp: it has no systemd-update-utmp.service.)
for unit in systemd-update-utmp.service systemd-random-seed.service systemd-journald.socket \
  systemd-journald-dev-log.socket systemd-journald.service; do
  if systemctl cat "$unit" >/dev/null 2>&1; then systemctl stop "$unit"; fi
done
# Nothing creates wtmp, btmp or lastlog but systemd-tmpfiles, which makes them empty at the first boot.
rm -f /var/log/wtmp /var/log/btmp /var/log/lastlog /var/lib/systemd/random-seed /var/lib/dhcp/*.leases
rm -rf /var/log/journal/*
sync
fstrim --verbose / || log "fstrim failed: the qcow2 will be larger than needed"
systemctl poweroff
