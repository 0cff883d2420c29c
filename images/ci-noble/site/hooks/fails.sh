#!/bin/sh
# A boot hook that fails: JupyterLab and the desktop start all the same, and the journal says so.
echo "fails.sh: this hook always fails"
exit 3
