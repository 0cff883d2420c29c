"""A [desktop] image booted with VISA metadata that lacks, or garbles, what the desktop reads: no pamPublicKey
(token login refused, the journal says why), a pamPublicKey that is not a PEM key (the same), no keyboardLayout
(VISA's default, logged). JupyterLab is served all the same."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.double.conftest import NO_DESKTOP_METADATA, NOT_PEM
from visa_build.double_boot import RunningDouble
from visa_build.image_spec import ImageSpec, xkb_layout


def settled(double: RunningDouble, timeout: float = 180) -> str:
    """The journal of visa-desktop-metadata.service once it has run (its lines are tagged visa-desktop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = double.container.exec_run(["systemctl", "is-active", "visa-desktop-metadata.service"]).output
        if state.decode().strip() in ("active", "failed"):
            break
        time.sleep(2)
    journal: str = double.container.exec_run(["journalctl", "-b", "-t", "visa-desktop", "--no-pager"]).output.decode()
    return journal


def token_check(double: RunningDouble, user: str, token: str) -> tuple[int, str]:
    """What PAM's token check (pam_exec's helper) says of `token` for `user`: exit code and its journal line."""
    result = double.container.exec_run(
        ["sh", "-c", 'printf "%s\\0" "$TOKEN" | /usr/local/lib/visa/visa-token-check /etc/visa/public.pem'],
        environment={"PAM_USER": user, "TOKEN": token},
    )
    journal = double.container.exec_run(["journalctl", "-b", "-t", "visa-token", "--no-pager"]).output.decode()
    return result.exit_code, journal


@pytest.mark.parametrize(
    ("case", "message"),
    [(NO_DESKTOP_METADATA, "has no pamPublicKey"), (NOT_PEM, "pamPublicKey is not a public key")],
)
def test_token_login_is_refused_without_a_valid_key_and_the_journal_says_why(
    crafted: Callable[[str], RunningDouble], case: str, message: str
) -> None:
    double = crafted(case)
    journal = settled(double)
    assert message in journal, f"{case}: the journal does not say '{message}':\n{journal}"
    assert double.container.exec_run(["test", "-e", "/etc/visa/public.pem"]).exit_code != 0, (
        f"{case}: /etc/visa/public.pem exists although the metadata had no valid key"
    )
    code, said = token_check(double, "visauser", "visauser,1700000000;AAAA")
    assert code != 0, f"{case}: a token was accepted with no valid key"
    assert "no VISA public key" in said, f"{case}: the refusal left no line saying why:\n{said}"


def test_no_keyboard_layout_gives_the_default_and_says_so(
    crafted: Callable[[str], RunningDouble], spec: ImageSpec
) -> None:
    """Without keyboardLayout: the site's [site] keyboard, else VISA's own en-gb-qwerty."""
    default = spec.site.keyboard or "en-gb-qwerty"
    layout, variant = xkb_layout(default) or ("", "")
    double = crafted(NO_DESKTOP_METADATA)
    journal = settled(double)
    assert f"has no keyboardLayout: the default {default}" in journal, journal
    keyboard = double.container.exec_run(["cat", "/etc/visa/keyboard"]).output.decode()
    assert f"XKBLAYOUT={layout}\nXKBVARIANT={variant}\n" == keyboard, f"not the default {default}: {keyboard}"


@pytest.mark.parametrize("case", [NO_DESKTOP_METADATA, NOT_PEM])
def test_jupyterlab_is_served_whatever_the_desktop_metadata(crafted: Callable[[str], RunningDouble], case: str) -> None:
    double = crafted(case)
    meta = double.container.exec_run(["cloud-init", "query", "ds.meta_data.meta.id"]).output.decode().strip()
    deadline = time.monotonic() + 300
    code = ""
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:8888/jupyter/{meta}/api/status"
        fetch = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).status)"
        code = double.container.exec_run(["python3", "-c", fetch]).output.decode().strip()[-3:]
        if code == "200":
            return
        time.sleep(3)
    pytest.fail(f"{case}: JupyterLab did not answer at /jupyter/{meta}/api/status (last: {code})")
