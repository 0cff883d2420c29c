#!/usr/bin/env bash
# The data-analysis environment, and its ipykernel as the image's python3 kernelspec "Data Analysis".
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR VISA_KERNEL_DISPLAY_NAME

log "installing the data-analysis environment into $VISA_DATA_ANALYSIS_ENV with $VISA_INSTALLER"
install_locked "$VISA_DATA_ANALYSIS_ENV" "$VISA_SPEC_DIR/data-analysis.txt"

# Written under the image's own Jupyter data dir, which the launcher puts first on JUPYTER_PATH: it
# shadows the python3 kernelspec that ipykernel ships inside the JupyterLab venv, and a user's own
# `--user --name=python3` (users' other kernelspecs are listed as usual).
"$VISA_DATA_ANALYSIS_ENV/bin/python" -m ipykernel install --prefix /opt/visa/jupyter --name python3 \
  --display-name "$VISA_KERNEL_DISPLAY_NAME" >&2
log "kernelspec python3 = \"$VISA_KERNEL_DISPLAY_NAME\" ($VISA_DATA_ANALYSIS_ENV/bin/python)"
