#!/usr/bin/env bash
# The JupyterLab venv at /opt/visa/jupyter/jupyterlab with the locked pins and the prebuilt widget and
# interactive-matplotlib extensions (no Node build).
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR

log "installing JupyterLab into $VISA_JUPYTER_VENV with $VISA_INSTALLER"
install_locked "$VISA_JUPYTER_VENV" "$VISA_SPEC_DIR/jupyterlab.txt" "$VISA_SPEC_DIR/jupyterlab.lock"

# `labextension list` colours its status words; strip the colour codes before matching.
extensions=$("$VISA_JUPYTER_VENV/bin/jupyter" labextension list 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
for extension in @jupyter-widgets/jupyterlab-manager jupyter-matplotlib; do
  grep -Eq "^\s+$extension v\S+\s+enabled\s+OK" <<<"$extensions" ||
    die "JupyterLab extension $extension is not enabled: $extensions"
done
log "extensions enabled: widget manager, jupyter-matplotlib"
