"""Bytecode compiled into wheels on the host: listed in RECORD, used by Python as is, checked against sources."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from visa_build.bytecode import add_bytecode, host_can_compile_for

EXECUTABLE = 0o100755 << 16


def _wheel(path: Path) -> Path:
    files = {
        "pkg/__init__.py": "",
        "pkg/mod.py": "VALUE = 42\n",
        "pkg/py2_example.py": "print 'not Python 3'\n",
        "pkg/tool": "#!/bin/sh\n",
        "pkg-1.0.data/scripts/run.py": "print('script')\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            if name == "pkg/tool":
                info.external_attr = EXECUTABLE
            wheel.writestr(info, text)
        wheel.writestr(
            "pkg-1.0.dist-info/RECORD", "".join(f"{name},,\n" for name in files) + "pkg-1.0.dist-info/RECORD,,\n"
        )
    return path


def test_modules_get_bytecode_listed_in_record(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    assert add_bytecode(wheel) == 2, "pkg/__init__.py and pkg/mod.py compile; the rest must be left alone"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read("pkg-1.0.dist-info/RECORD").decode()
        tag = sys.implementation.cache_tag
        for name in (f"pkg/__pycache__/__init__.{tag}.pyc", f"pkg/__pycache__/mod.{tag}.pyc"):
            data = archive.read(name)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert f"{name},sha256={digest},{len(data)}" in record, f"{name} is not listed in RECORD"
        assert not any("py2_example" in n and n.endswith(".pyc") for n in names), "a module that cannot compile"
        assert not any(n.startswith("pkg-1.0.data/") and n.endswith(".pyc") for n in names), "scripts are not modules"
        assert archive.getinfo("pkg/tool").external_attr == EXECUTABLE, "file modes must survive the rewrite"
    assert not list(tmp_path.glob("*.partial")), "no partial wheel may be left"


def _import_log(site: Path) -> str:
    """What `python -v` says when importing pkg.mod from `site` without writing bytecode."""
    result = subprocess.run(
        [sys.executable, "-v", "-B", "-c", "import pkg.mod; assert pkg.mod.VALUE == 42"],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr


def test_python_uses_the_bytecode_and_rejects_it_for_a_changed_source(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    add_bytecode(wheel)
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # as an installer would, with the files' times of now
    pyc = f"pkg/__pycache__/mod.{sys.implementation.cache_tag}.pyc"
    assert f"code object from '{site / pyc}'" in _import_log(site), "Python did not use the wheel's bytecode"
    (site / "pkg/mod.py").write_text("VALUE = 42  # edited after install\n")
    assert f"code object from '{site / pyc}'" not in _import_log(site), "stale bytecode must not be used"


def test_only_for_the_hosts_python_series() -> None:
    major, minor = sys.version_info[:2]
    assert host_can_compile_for(f"{major}.{minor}.0") and host_can_compile_for(f"{major}.{minor}.99")
    assert not host_can_compile_for(f"{major}.{minor + 1}.0")


def test_a_script_without_a_main_guard_compiles_too(tmp_path: Path) -> None:
    """A site's script that calls the library at its top level, with no `if __name__ == "__main__":` guard: the
    compile's worker processes must not run the script again."""
    wheels = [_wheel(tmp_path / f"pkg{n}-1.0-py3-none-any.whl") for n in range(3)]
    script = tmp_path / "site_build.py"
    script.write_text(
        "from pathlib import Path\nfrom visa_build.bytecode import add_bytecode_to_all\n"
        f"print('added', add_bytecode_to_all([Path(p) for p in {[str(w) for w in wheels]!r}]))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, f"the script failed:\n{done.stderr[-2000:]}"
    assert done.stdout.strip() == "added 6", f"it said {done.stdout!r}: 2 modules of each of the 3 wheels compile"
