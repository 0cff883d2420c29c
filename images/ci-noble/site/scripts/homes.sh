#!/usr/bin/env bash
# A second build script: it runs after ldap.sh.
set -euo pipefail
echo "homes.sh" >>/var/lib/visa-site-scripts
