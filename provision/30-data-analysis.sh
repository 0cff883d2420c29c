#!/usr/bin/env bash
# The data-analysis environment, and its ipykernel as the image's python3 kernelspec "Data Analysis".
set -euo pipefail
# shellcheck source=provision/lib.sh
source "$(dirname "$0")/lib.sh"
require_env VISA_SPEC_DIR VISA_KERNEL_DISPLAY_NAME

log "installing the data-analysis environment into $VISA_DATA_ANALYSIS_ENV with $VISA_INSTALLER"
install_locked "$VISA_DATA_ANALYSIS_ENV" "$VISA_SPEC_DIR/data-analysis.txt" "$VISA_SPEC_DIR/data-analysis.lock"

# Written under the image's own Jupyter data dir, which the launcher puts first on JUPYTER_PATH: it
# shadows the python3 kernelspec that ipykernel ships inside the JupyterLab venv, and a user's own
# `--user --name=python3` (users' other kernelspecs are listed as usual).
"$VISA_DATA_ANALYSIS_ENV/bin/python" -m ipykernel install --prefix /opt/visa/jupyter --name python3 \
  --display-name "$VISA_KERNEL_DISPLAY_NAME" >&2

# Users add packages to this environment as they could to the seed's conda environment: `pip install X`
# (the default for a user who cannot write here) and `pip install --user X` go to ~/.local, which comes
# first on sys.path. pip allows user installs only where pyvenv.cfg includes the system site packages;
# visa_site.py (run at every start by visa-site.pth) keeps Debian's dist-packages out all the same, and
# the kernel starts through visa_kernel.py, which warns about user packages that shadow the image's.
site_packages=$("$VISA_DATA_ANALYSIS_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
files="$(dirname "$0")/files/data-analysis"
install -m 0644 "$files/visa_site.py" "$files/visa_kernel.py" "$site_packages/"
echo "import visa_site" >"$site_packages/visa-site.pth"
"$VISA_DATA_ANALYSIS_ENV/bin/python" -m compileall -q --invalidation-mode checked-hash \
  "$site_packages/visa_site.py" "$site_packages/visa_kernel.py" >&2
sed -i 's/^include-system-site-packages = false$/include-system-site-packages = true/' \
  "$VISA_DATA_ANALYSIS_ENV/pyvenv.cfg"
leaked=$("$VISA_DATA_ANALYSIS_ENV/bin/python" -s -c 'import sys; print(*[p for p in sys.path if "dist-packages" in p])')
[[ -z $leaked ]] || die "the system's packages are on the data-analysis sys.path: $leaked"
"$VISA_DATA_ANALYSIS_ENV/bin/python" -s -m pip check >&2 || die "pip check failed in $VISA_DATA_ANALYSIS_ENV"
"$VISA_DATA_ANALYSIS_ENV/bin/python" - /opt/visa/jupyter/share/jupyter/kernels/python3/kernel.json <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
argv = spec["argv"]
argv[argv.index("ipykernel_launcher")] = "visa_kernel"
# -P (Python 3.11+): the kernel starts in the notebook's folder, which must not come first on sys.path, or a
# visa_kernel.py (or any module the kernel imports) planted there would run in its place.
argv.insert(1, "-P")
json.dump(spec, open(sys.argv[1], "w"), indent=1)
PY
log "kernelspec python3 = \"$VISA_KERNEL_DISPLAY_NAME\" ($VISA_DATA_ANALYSIS_ENV/bin/python -P -m visa_kernel)"
