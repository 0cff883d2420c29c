"""The "Data Analysis" kernel: makes the owner's user site importable at once, warns in one line about user
packages that shadow the image's own, then starts ipykernel (the kernelspec runs `python -m visa_kernel`)."""

import importlib.metadata
import os
import re
import site
import sys
import sysconfig


def _versions(path):
    """{normalised distribution name: version} of the distributions installed in `path`."""
    found = {}
    for distribution in importlib.metadata.distributions(path=[path]):
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), distribution.version)
    return found


def _user_site_first():
    """Put the user site (created if missing, so `%pip install` output imports without a restart) ahead of the
    environment's packages; returns it, or None where user packages are off (python -s, PYTHONNOUSERSITE)."""
    if not site.ENABLE_USER_SITE:
        return None
    user_site = site.getusersitepackages()
    try:
        os.makedirs(user_site, exist_ok=True)
    except OSError:
        return user_site if os.path.isdir(user_site) else None
    sys.path_importer_cache.pop(user_site, None)  # it may have been looked at while it did not exist
    if user_site not in sys.path:
        environment = sysconfig.get_path("purelib")
        at = sys.path.index(environment) if environment in sys.path else len(sys.path)
        sys.path.insert(at, user_site)
    return user_site


def shadow_warning(user_site, environment):
    """One line naming each user package that shadows one of the image's, with both versions; or None."""
    mine, image = _versions(user_site), _versions(environment)
    shadowing = sorted(mine.keys() & image.keys())
    if not shadowing:
        return None
    listed = ", ".join(f"{name} {mine[name]} (image: {image[name]})" for name in shadowing)
    return (
        f"visa-kernel: WARNING user packages in {user_site} shadow the image's: {listed}; "
        f"to undo: python -m pip uninstall {' '.join(shadowing)}"
    )


def main():
    user_site = _user_site_first()
    if user_site:
        warning = shadow_warning(user_site, sysconfig.get_path("purelib"))
        if warning:
            print(warning, file=sys.stderr, flush=True)
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # as ipykernel_launcher: not the working directory first
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
