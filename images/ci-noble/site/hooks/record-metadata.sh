#!/usr/bin/env bash
# A site's boot hook ([layers] boot_hooks): run once per instance id after cloud-init, as root, with VISA's
# metadata as VISA_* variables. Here it records what it saw (the tests read it).
set -euo pipefail
printf '%s %s %s %s\n' "$VISA_ID" "$VISA_OWNER" "${VISA_PROPOSALS-unset}" "${VISA_SCREEN_WIDTH-unset}" >>/var/lib/visa-site-hook.log
echo "record-metadata: instance $VISA_ID, owner $VISA_OWNER"
