#!/usr/bin/env bash
# The Jupyter server config, the site's JupyterLab defaults, the launcher and the systemd unit that starts
# JupyterLab at every boot.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR

install -D -m 0644 "$VISA_SPEC_DIR/jupyter_server_config.py" /etc/visa/jupyter_server_config.py
install -D -m 0644 "$VISA_SPEC_DIR/visa-jupyter.env" /etc/visa/visa-jupyter.env

# Site defaults: overrides.json beside JupyterLab's own settings (every plugin named must exist in this
# JupyterLab), and extensions disabled and locked at the venv's level (its etc/jupyter/labconfig).
overrides="$VISA_SPEC_DIR/jupyterlab-overrides.json"
"$VISA_JUPYTER_VENV/bin/python" - "$overrides" "$VISA_JUPYTER_VENV" <<'PY' || die "$overrides names unknown plugins"
import json, pathlib, sys
overrides, venv = json.loads(pathlib.Path(sys.argv[1]).read_text()), pathlib.Path(sys.argv[2])
schemas = {f"{p.parent.relative_to(root)}:{p.stem}" for root in venv.glob("share/jupyter/lab*/**/schemas")
           for p in root.rglob("*.json") if p.name != "package.json.orig"}
unknown = sorted(set(overrides) - schemas)
if unknown:
    sys.exit(f"no settings schema in this JupyterLab for: {', '.join(unknown)}")
PY
install -D -m 0644 "$overrides" "$VISA_JUPYTER_VENV/share/jupyter/lab/settings/overrides.json"
while read -r extension; do
  [[ -n $extension ]] || continue
  "$VISA_JUPYTER_VENV/bin/jupyter" labextension disable --level=sys_prefix "$extension" >/dev/null
  "$VISA_JUPYTER_VENV/bin/jupyter" labextension lock --level=sys_prefix "$extension" >/dev/null
  log "JupyterLab extension $extension disabled and locked"
done <"$VISA_SPEC_DIR/jupyterlab-disabled.txt"

install -D -m 0755 "$(dirname "$0")/files/visa-jupyter-launch" /opt/visa/jupyter/bin/visa-jupyter-launch
install -D -m 0644 "$(dirname "$0")/files/visa-jupyter.service" /etc/systemd/system/visa-jupyter.service
# shellcheck source=/dev/null
wait_seconds=$(source /etc/visa/visa-jupyter.env && echo "$VISA_OWNER_WAIT_SECONDS")
install -d /etc/systemd/system/visa-jupyter.service.d
printf '[Unit]\n# five owner waits and restart delays (see the unit)\nStartLimitIntervalSec=%d\n' \
  $((5 * (wait_seconds + 1) + 60)) >/etc/systemd/system/visa-jupyter.service.d/start-limit.conf
systemctl enable visa-jupyter.service
log "visa-jupyter.service installed and enabled"
