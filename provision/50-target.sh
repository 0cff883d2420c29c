#!/usr/bin/env bash
# What differs between the VM and its container double, decided here by VISA_TARGET and nowhere else.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_TARGET

case "$VISA_TARGET" in
  container)
    # No cidata disk in a container: cloud-init reads the NoCloud seed the test puts in
    # /var/lib/cloud/seed/nocloud; Docker owns the network, so cloud-init must not configure it.
    mkdir -p /var/lib/cloud/seed/nocloud
    cat >/etc/cloud/cloud.cfg.d/90-visa-container.cfg <<'CFG'
datasource_list: [NoCloud, None]
network: {config: disabled}
CFG
    # Units that cannot work without a kernel or hardware of the container's own; Docker owns the network and
    # its name resolution (Ubuntu's systemd-resolved needs namespaces a container does not give).
    systemctl mask systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
      getty@tty1.service serial-getty@.service console-getty.service systemd-networkd-wait-online.service \
      systemd-resolved.service
    ;;
  vm)
    # On OpenStack, cloud-init asks Nova's metadata service once by default: one 500 from a busy service at
    # boot leaves the instance without its metadata (no owner, no JupyterLab). Keep asking for two minutes.
    cat >/etc/cloud/cloud.cfg.d/90-visa-openstack.cfg <<'CFG'
datasource:
  OpenStack:
    max_wait: 120
    timeout: 10
    retries: 5
CFG
    ;;
  *) die "VISA_TARGET=$VISA_TARGET is not one of: container, vm" ;;
esac
