"""A site's own repository (`visa-build init`): its image spec inheriting one of visa-build's, visa-build pinned,
a `./visa-build` that installs that pin, the CI templates wired for the spec, and a README."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .image_spec import INHERIT_PREFIX, SPEC_NAME, project_specs
from .resources import project_files

#: The project spec a new site repository inherits unless told otherwise: the one with VISA's remote desktop.
DEFAULT_BASE = "visa-jupyter-noble"
#: The spec list of visa-build's CI templates (ci/), replaced by the site's spec.
_TEMPLATE_SPECS = "[images/visa-jupyter, images/visa-jupyter-trixie]"

_IMAGE_TOML = """\
# This site's image: visa-build's {base} (distribution, JupyterLab, data-analysis environment and their locks)
# under the site's name. A spec that inherits sets only [image] name and [service]; see visa-build's
# docs/image-specs-and-settings.md.
[image]
name = "{name}"
inherits = "{inherits}"
"""

_REQUIREMENTS = """\
# The visa-build this repository builds with; ./visa-build installs it into .venv/. pip finds it on its index,
# in a folder of wheels (PIP_FIND_LINKS=<folder>), or write `visa-build @ git+<its repository>@<tag>` instead.
visa-build=={version}
"""

_INVOKE_YAML = """\
# visa-build's settings for this repository (INVOKE_VISA_<KEY> variables override them).
visa:
  image: images/{name}
  nightly_images: images/{name}
"""

_WRAPPER = """\
#!/usr/bin/env bash
# Runs a visa-build task (`./visa-build --list`) with the visa-build requirements.txt pins, installed in .venv/
# (again whenever requirements.txt changes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
stamp="$venv/.installed-$(sha256sum "$here/requirements.txt" | cut -c1-16)"
exec 9<"$here/visa-build"
flock 9  # runs started at once (CI jobs) create the environment once
if [ ! -e "$stamp" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "visa-build: installing python3-venv (needed for .venv)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  fi
  echo "visa-build: creating $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
  touch "$stamp"
fi
exec 9<&-
cd "$here"
exec "$venv/bin/visa-build" "$@"
"""

_README = """\
# {name}

This site's VISA image, built and tested by visa-build {version} (pinned in `requirements.txt`). Its spec,
`images/{name}/image.toml`, inherits visa-build's `{base}` and names it `{name}`.

On a Debian 12 host, as root:

    ./visa-build build-qcow2   # installs visa-build into .venv/ the first time, then builds the image
    ./visa-build test-qcow2    # boots the image with VISA's metadata and runs visa-build's contract suites

`./visa-build --list` shows every task. Settings are in `invoke.yaml` (or `INVOKE_VISA_*` variables); what is
built goes to `build/`. The nightly runs in CI from `.gitlab-ci.yml` (GitLab) or
`.github/workflows/visa-build-nightly.yml` (GitHub Actions), on a runner tagged `visa-build`: delete the one
you do not use. A newer visa-build is a new pin in `requirements.txt`.
"""

_GITIGNORE = "/build\n/.venv\n"


def site_files(name: str, base: str, version: str) -> dict[str, str]:
    """The files of a new site repository whose spec `name` inherits visa-build's `base`, by relative path."""
    values = {"name": name, "base": base, "inherits": INHERIT_PREFIX + base, "version": version}
    return {
        f"images/{name}/image.toml": _IMAGE_TOML.format(**values),
        "requirements.txt": _REQUIREMENTS.format(**values),
        "invoke.yaml": _INVOKE_YAML.format(**values),
        "visa-build": _WRAPPER,
        "README.md": _README.format(**values),
        ".gitignore": _GITIGNORE,
        ".gitlab-ci.yml": _ci_template("visa-build.gitlab-ci.yml", name),
        ".github/workflows/visa-build-nightly.yml": _ci_template("visa-build-nightly.github.yml", name),
    }


def _ci_template(template: str, name: str) -> str:
    """visa-build's CI template `template` (ci/) for the site's spec `name`; its ./visa-build is the site's wrapper."""
    text = (project_files() / "ci" / template).read_text().replace(_TEMPLATE_SPECS, f"[images/{name}]")
    return f"# Written by visa-build init from visa-build's ci/{template}, for images/{name}.\n" + text


def write_site_repository(folder: Path, *, name: str, base: str, version: str) -> list[Path]:
    """Write a new site repository into `folder`, which must be absent or empty; returns the files written."""
    if folder.exists() and not (folder.is_dir() and not any(folder.iterdir())):
        raise ConfigError(
            f"{folder} already exists and is not an empty folder: init writes a new site repository only",
            tip="name a new or empty folder",
        )
    if not SPEC_NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not an image name: use lower-case letters, digits and '-'",
            tip="pass --name, e.g. --name ill-jupyter",
        )
    if base not in project_specs():
        raise ConfigError(
            f"visa-build has no spec {base!r} to inherit; its specs: {', '.join(project_specs())}",
            tip=f"pass --base with one of them (default: {DEFAULT_BASE})",
        )
    written = []
    for relative, text in site_files(name, base, version).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    (folder / "visa-build").chmod(0o755)
    return written
