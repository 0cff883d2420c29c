"""The [desktop] of a spec (guacd from the release or a site's .deb, checked by sha256) and VISA's token check
(the pam_exec helper of xrdp-sesman), run here on real tokens signed with openssl."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import IMAGES, REPO, desktop_token, rsa_key
from visa_build import build_context, render
from visa_build.errors import ConfigError
from visa_build.image_spec import load_image_spec

CHECK = REPO / "provision/files/desktop/visa-token-check"


def spec_with_desktop(tmp_path: Path, desktop: str, *, image: str = "ci") -> Path:
    for name in ("ci", "visa-jupyter", "ci-noble", "visa-jupyter-noble"):
        shutil.copytree(IMAGES / name, tmp_path / name)
    toml = tmp_path / image / "image.toml"
    text = toml.read_text()
    toml.write_text(text[: text.index("[desktop]")] if "[desktop]" in text else text)
    toml.write_text(toml.read_text() + "\n[desktop]\n" + desktop)
    return tmp_path / image


def test_a_desktop_on_a_release_without_guacd_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_image_spec(spec_with_desktop(tmp_path, "enabled = true\n"))
    assert "debian 12 (bookworm) ships no guacd package" in str(raised.value), raised.value
    assert raised.value.tip and "guacd_deb" in raised.value.tip and "guacd_deb_sha256" in raised.value.tip


def test_a_site_guacd_deb_must_match_its_sha256(tmp_path: Path) -> None:
    deb = tmp_path / "guacd_1.5.5_amd64.deb"
    deb.write_bytes(b"!<arch>\nsite-built guacd")
    folder = spec_with_desktop(
        tmp_path, f'enabled = true\nguacd_deb = "../{deb.name}"\nguacd_deb_sha256 = "{"0" * 64}"\n'
    )
    with pytest.raises(ConfigError, match="has sha256 .* but guacd_deb_sha256 is"):
        load_image_spec(folder)


def test_a_site_guacd_deb_reaches_the_build(tmp_path: Path) -> None:
    deb = tmp_path / "guacd_1.5.5_amd64.deb"
    deb.write_bytes(b"!<arch>\nsite-built guacd")
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    spec = load_image_spec(
        spec_with_desktop(tmp_path, f'enabled = true\nguacd_deb = "../{deb.name}"\nguacd_deb_sha256 = "{digest}"\n')
    )
    assert spec.desktop is not None and spec.desktop.guacd_deb is not None
    assert spec.desktop.guacd_deb.resolve() == deb.resolve()
    env = render.provision_env(
        spec, target="vm", wheelhouse_url="", installer="uv", wheel_bytecode=False, debian_state=""
    )
    assert env["VISA_DESKTOP"] == "xfce" and env["VISA_GUACD_DEB"].endswith(render.GUACD_DEB)
    context = build_context.prepare(spec, tmp_path / "context")
    assert (context / "spec" / render.GUACD_DEB).read_bytes() == deb.read_bytes()


def test_no_desktop_provisions_none() -> None:
    spec = load_image_spec(IMAGES / "ci")
    env = render.provision_env(
        spec, target="vm", wheelhouse_url="", installer="uv", wheel_bytecode=False, debian_state=""
    )
    assert spec.desktop is None and env["VISA_DESKTOP"] == "" and env["VISA_GUACD_DEB"] == ""
    assert load_image_spec(IMAGES / "ci-noble").desktop is not None, "images/ci-noble is the desktop image CI tests"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    found = {}
    for name in ("visa", "other"):
        private = rsa_key(folder / f"{name}.key")
        public = folder / f"{name}.pem"
        subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
        public.chmod(0o644)
        found[name], found[f"{name}.pub"] = private, public
    return found


def check(public: Path, user: str, password: str) -> tuple[int, str]:
    """The helper as pam_exec runs it: PAM_USER set, the password on stdin, NUL-terminated."""
    done = subprocess.run(
        [str(CHECK), str(public)],
        input=password.encode() + b"\0",
        capture_output=True,
        env={"PAM_USER": user, "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    return done.returncode, done.stderr.decode()


def test_a_fresh_token_for_the_user_is_accepted(keys: dict[str, Path]) -> None:
    code, said = check(keys["visa.pub"], "alice", desktop_token(keys["visa"], "alice", int(time.time())))
    assert code == 0 and "accepted desktop login of alice" in said, said
    fits = len(desktop_token(keys["visa"], "alice", int(time.time())))
    assert fits <= 255, f"a 1024-bit token of {fits} characters no longer fits xrdp's limit of 255"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("61 s old", "s old (at most 60 s)"),
        ("from the future", "in the future"),
        ("alice2 used as alice", "the token is for alice2, not alice"),
        ("a bad signature", "does not verify"),
        ("another key", "does not verify"),
        ("not a token", "is not a VISA token"),
    ],
)
def test_a_bad_token_is_refused_with_its_reason(keys: dict[str, Path], case: str, reason: str) -> None:
    now = int(time.time())
    password = {
        "61 s old": desktop_token(keys["visa"], "alice", now - 61),
        "from the future": desktop_token(keys["visa"], "alice", now + 120),
        "alice2 used as alice": desktop_token(keys["visa"], "alice2", now),
        "a bad signature": desktop_token(keys["visa"], "alice", now)[:-8] + "AAAAAAA=",
        "another key": desktop_token(keys["other"], "alice", now),
        "not a token": "secret",
    }[case]
    code, said = check(keys["visa.pub"], "alice", password)
    assert code != 0, f"{case}: accepted"
    assert "refused desktop login of alice: " in said and reason in said, f"{case}: {said}"


def test_a_key_others_can_write_is_not_trusted(keys: dict[str, Path], tmp_path: Path) -> None:
    writable = tmp_path / "public.pem"
    shutil.copyfile(keys["visa.pub"], writable)
    writable.chmod(0o666)
    code, said = check(writable, "alice", desktop_token(keys["visa"], "alice", int(time.time())))
    assert code != 0 and "no VISA public key" in said, said
    code, said = check(tmp_path / "missing.pem", "alice", desktop_token(keys["visa"], "alice", int(time.time())))
    assert code != 0 and "no VISA public key" in said, said
