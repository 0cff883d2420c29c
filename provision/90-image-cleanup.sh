#!/usr/bin/env bash
# Image hygiene of the VM (contract C14), run last by Packer: the first real boot must behave like a fresh
# instance. The build user and /opt/visa/build go in 99-seal.sh, which also powers the VM off.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"

log "removing caches, logs and per-instance state"
apt-get clean
rm -rf /var/lib/apt/lists/* /root/.cache /var/tmp/*
# cloud-init ran for the build VM: forget that instance, its logs and the seed it read.
cloud-init clean --logs --seed
rm -f /etc/network/interfaces.d/50-cloud-init /etc/netplan/50-cloud-init.yaml
echo localhost >/etc/hostname  # not the build VM's name; cloud-init sets the instance's own
# Keys cloud-init put in for the build (also root's, which disable_root fills with a refusal prefix).
rm -f /root/.ssh/authorized_keys
log "removing SSH host keys, the remote desktop's TLS key and the machine id (regenerated at first boot)"
rm -f /etc/ssh/ssh_host_* /etc/xrdp/key.pem /etc/xrdp/cert.pem
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
find /var/log -type f \( -name '*.log' -o -name '*.gz' -o -name '*.[0-9]' \) -delete
