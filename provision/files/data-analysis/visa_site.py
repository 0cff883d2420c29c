"""Startup hook of VISA's data-analysis environment, imported by visa-site.pth at every interpreter start.

The environment's pyvenv.cfg includes the system site packages only so that pip accepts user installs: a
user who cannot write the environment gets `pip install X` into ~/.local (pip's own default then), and
`--user` works, as in a conda environment. This hook keeps the system's own packages (Debian's dist-packages)
out of sys.path, and puts the user's site ahead of the environment's packages (site.py adds a venv's own
packages first), so the environment is exactly its lock plus, taking precedence, what the user installed.
"""

import os
import site
import sys

ENVIRONMENT_SITE = os.path.dirname(os.path.abspath(__file__))
#: Debian's dist-packages folders of the interpreter this environment was made from.
SYSTEM_SITE = frozenset(os.path.normpath(path) for path in site.getsitepackages([sys.base_prefix]))
USER_SITE = os.path.normpath(site.getusersitepackages())
_add_site_dir = site.addsitedir


def user_site_first():
    """Move the user's site right before the environment's packages (visa_kernel.py calls it too)."""
    if USER_SITE in sys.path and ENVIRONMENT_SITE in sys.path:
        sys.path.remove(USER_SITE)
        sys.path.insert(sys.path.index(ENVIRONMENT_SITE), USER_SITE)


def _add_site_dir_ordered(sitedir, known_paths=None):
    """site.addsitedir, but the system's folders are skipped and the user's goes before the environment's."""
    path = os.path.normpath(sitedir)
    if path in SYSTEM_SITE:
        return known_paths
    known_paths = _add_site_dir(sitedir, known_paths)
    if path == USER_SITE:
        user_site_first()
    return known_paths


# site.py adds the user's folder (unless python -s or PYTHONNOUSERSITE) and then the system's right after this
# environment's folder, whose .pth files run this hook.
site.addsitedir = _add_site_dir_ordered
sys.path[:] = [path for path in sys.path if os.path.normpath(path) not in SYSTEM_SITE]
user_site_first()
