#!/usr/bin/env bash
# The Jupyter server config, the launcher and the systemd unit that starts JupyterLab at every boot.
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR

install -D -m 0644 "$VISA_SPEC_DIR/jupyter_server_config.py" /etc/visa/jupyter_server_config.py
install -D -m 0644 "$VISA_SPEC_DIR/visa-jupyter.env" /etc/visa/visa-jupyter.env
install -D -m 0755 "$(dirname "$0")/files/visa-jupyter-launch" /opt/visa/jupyter/bin/visa-jupyter-launch
install -D -m 0644 "$(dirname "$0")/files/visa-jupyter.service" /etc/systemd/system/visa-jupyter.service
systemctl enable visa-jupyter.service
log "visa-jupyter.service installed and enabled"
