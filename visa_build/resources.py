"""Where visa-build's own files are (provision/, docker/, packer/, images/, ci/ and the contract suites under
tests/), and where a run works: in visa-build's checkout, or anywhere when visa-build is an installed wheel.

A wheel carries those files as visa_build/_project/ (pyproject.toml maps them there); a checkout, and an editable
install of it, has them at its root.
"""

from __future__ import annotations

from pathlib import Path

#: The wheel's copy of the project's files; absent in a checkout.
_PACKAGED = Path(__file__).resolve().parent / "_project"
_CHECKOUT = Path(__file__).resolve().parent.parent


def project_files() -> Path:
    """The folder holding visa-build's own files, laid out as in its repository: the wheel's copy when installed,
    else the checkout."""
    return _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT


def checkout() -> Path | None:
    """visa-build's checkout when it runs from one; None when it runs from an installed wheel."""
    return None if _PACKAGED.is_dir() else _CHECKOUT


def workspace() -> Path:
    """The folder relative spec folders and the default build folder are under: the checkout, or the current
    folder (a site's repository) when visa-build is installed."""
    return checkout() or Path.cwd()
