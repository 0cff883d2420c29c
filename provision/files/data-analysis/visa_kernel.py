"""The "Data Analysis" kernel: makes the owner's user site importable at once, warns in one line about user
packages that shadow the image's own, then starts ipykernel. The kernelspec runs `python -P -m visa_kernel`:
-P keeps the notebook's folder (the working directory) off sys.path, as ipykernel_launcher does for itself."""

import importlib.metadata
import os
import re
import site
import sys


def _versions(path):
    """{normalised distribution name: version} of the distributions installed in `path`."""
    found = {}
    for distribution in importlib.metadata.distributions(path=[path]):
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), distribution.version)
    return found


def _user_site_ready(visa_site):
    """Create the user site when missing (so `%pip install` output imports without a restart) and put it ahead
    of the environment's packages; False where user packages are off (python -s, PYTHONNOUSERSITE)."""
    if not site.ENABLE_USER_SITE:
        return False
    try:
        os.makedirs(visa_site.USER_SITE, exist_ok=True)
    except OSError:
        return os.path.isdir(visa_site.USER_SITE)
    sys.path_importer_cache.pop(visa_site.USER_SITE, None)  # it may have been looked at while it did not exist
    if visa_site.USER_SITE not in sys.path:
        sys.path.append(visa_site.USER_SITE)
    visa_site.user_site_first()
    return True


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
    import visa_site  # imported at start-up already, by visa-site.pth

    if _user_site_ready(visa_site):
        warning = shadow_warning(visa_site.USER_SITE, visa_site.ENVIRONMENT_SITE)
        if warning:
            print(warning, file=sys.stderr, flush=True)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
