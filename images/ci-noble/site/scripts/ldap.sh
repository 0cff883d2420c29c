#!/usr/bin/env bash
# A site's build script ([layers] scripts, run as root in order): here it records that it ran, after the
# overlay and the packages, which it checks.
set -euo pipefail
test -f /etc/visa-site/site.conf
dpkg -s visa-site-tool >/dev/null
echo "ldap.sh" >>/var/lib/visa-site-scripts
