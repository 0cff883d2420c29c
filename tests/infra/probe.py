"""Runs ON the target (its /usr/bin/python3, stdlib only, as root) and prints one JSON object: the facts that
the infra suite asserts on, gathered in one round trip instead of one per test. Each fact is either its value
or {"error": "..."}, so one broken fact names itself and does not hide the others.

Input (the last argument, base64 of JSON): {"jupyterlab": venv, "data_analysis": prefix, "imports": [...],
"config": server config file, "port": server port, "vm": bool, "build_key": "<public key blob or empty>"}.
tests/infra/conftest.py sends this script and its input base64-encoded, so no pattern a test greps the journal
for (sudo logs command lines) appears in clear in a command line.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import pwd
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

UNIT = "visa-jupyter.service"
BUILD_USER = "visa-build"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Run by an environment's own python: its .py files whose bytecode Python would not use as is (missing,
#: or stale for its source), skipping files that do not compile at all (examples for other versions).
STALE_BYTECODE = r"""
import importlib.util, pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_path("purelib"))
for source in site.rglob("*.py"):
    cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
    header = cached.read_bytes()[:16] if cached.is_file() else b""
    stat = source.stat()
    if header[:4] == importlib.util.MAGIC_NUMBER:
        flags = int.from_bytes(header[4:8], "little")
        if flags & 1 and header[8:16] == importlib.util.source_hash(source.read_bytes()):
            continue
        if not flags and header[8:16] == ((int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
                                          + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")):
            continue
    try:
        compile(source.read_bytes(), str(source), "exec")
    except (SyntaxError, ValueError):
        continue
    print(source.relative_to(site))
"""

#: Loads the server's config file the way the server does (traitlets) and prints its values as JSON.
LOAD_CONFIG = (
    "import json, sys; from traitlets.config.loader import PyFileConfigLoader as L; c = L(sys.argv[1]).load_config()"
    "; print(json.dumps({f'{s}.{k}': v for s in c for k, v in c[s].items()}))"
)


def sh(argv: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        argv, capture_output=True, text=True, errors="replace", env={**os.environ, **(env or {})}, timeout=600
    )
    return {"rc": done.returncode, "stdout": done.stdout.strip(), "stderr": done.stderr.strip()[-3000:]}


def importer(python: str, module: str) -> Callable[[], dict[str, object]]:
    """A probe that imports `module` with `python`, headless (no display, no Qt platform)."""
    return lambda: sh([python, "-c", f"import {module}"], env={"MPLBACKEND": "Agg", "QT_QPA_PLATFORM": "offscreen"})


def output(argv: list[str]) -> str:
    result = sh(argv)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result['rc']}: {result['stderr']}")
    return str(result["stdout"])


def environment(prefix: str, with_pip_version: bool) -> dict[str, object]:
    python = f"{prefix}/bin/python"
    config = Path(prefix, "pyvenv.cfg")
    # -s: the environment as the image holds it, never a user's ~/.local
    listing = json.loads(output([python, "-s", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]))
    facts: dict[str, object] = {
        "pyvenv_cfg": config.read_text() if config.is_file() else None,
        "packages": {item["name"]: item["version"] for item in listing},
        "pip_check": sh([python, "-s", "-m", "pip", "check", "--disable-pip-version-check"]),
        "stale_bytecode": sh([python, "-s", "-c", STALE_BYTECODE]),
        "sys_path": json.loads(output([python, "-c", "import json, sys; print(json.dumps(sys.path))"])),
    }
    if with_pip_version:
        facts["pip_version"] = output([f"{prefix}/bin/pip", "--version"])
    return facts


#: One line per installed Debian package; tests/vm runs the same query in the container double.
DPKG_QUERY = ["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}${binary:Package} ${Version}\\n"]


def debian_packages() -> dict[str, str]:
    """{package: version} of every installed Debian package."""
    return parse_dpkg(output(DPKG_QUERY))


def kernelspecs(venv: str) -> dict[str, dict[str, str]]:
    """The image's kernelspecs as its server finds them (the launcher's JUPYTER_PATH): name, display name, argv[0]."""
    listed = json.loads(
        output(
            [
                "env",
                "JUPYTER_PATH=/opt/visa/jupyter/share/jupyter",
                f"{venv}/bin/jupyter",
                "kernelspec",
                "list",
                "--json",
            ]
        )
    )
    return {
        name: {"display_name": found["spec"]["display_name"], "argv0": found["spec"]["argv"][0]}
        for name, found in listed["kernelspecs"].items()
    }


def apt_sources() -> list[str]:
    """The image's apt source lines (one-line format), from sources.list and sources.list.d."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    lines = (line.strip() for path in files if path.is_file() for line in path.read_text().splitlines())
    return [line for line in lines if line.startswith("deb ")]


def site_settings() -> dict[str, object]:
    """What the image holds of a spec's [site]: time zone, default keyboard, chrony's site servers, the sha256 of
    each site CA certificate and the instance proxy; and of its [layers] (site_layers)."""
    keyboard, sources = Path("/etc/visa/keyboard-default"), Path("/etc/chrony/sources.d/visa-site.sources")
    proxy = Path("/etc/visa/site-proxy.env")  # its first line: http_proxy=<the instance proxy>
    certificates = sorted(Path("/usr/local/share/ca-certificates").glob("visa-site-*.crt"))
    return {
        "timezone": os.path.realpath("/etc/localtime").removeprefix("/usr/share/zoneinfo/"),
        "keyboard": keyboard.read_text().strip() if keyboard.is_file() else "",
        "ntp_servers": [line.split()[1] for line in sources.read_text().splitlines()] if sources.is_file() else [],
        "ca_certificates": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in certificates},
        "layers": site_layers(),
        "proxy": proxy.read_text().splitlines()[0].partition("=")[2] if proxy.is_file() else "",
    }


def site_layers() -> dict[str, dict[str, str]]:
    """What the image holds of a spec's [layers], by kind (deb, overlay, script, hook): name -> sha256, as the
    build recorded it in /usr/share/visa/site-layers.sha256."""
    record = Path("/usr/share/visa/site-layers.sha256")
    layers: dict[str, dict[str, str]] = {}
    for line in record.read_text().splitlines() if record.is_file() else []:
        digest, kind, name = line.split(" ", 2)
        layers.setdefault(kind, {})[name] = digest
    return layers


def parse_dpkg(text: str) -> dict[str, str]:
    rows = (line.split() for line in text.splitlines())
    return {row[1]: row[2] for row in rows if len(row) == 3 and row[0] == "ii"}


def metadata() -> dict[str, str]:
    instance_id = output(["cloud-init", "query", "ds.meta_data.meta.id"])
    owner = output(["cloud-init", "query", "ds.meta_data.meta.owner"])
    return {"id": instance_id, "owner": owner, "home": pwd.getpwnam(owner).pw_dir}


def unit() -> dict[str, str]:
    properties = (
        "UnitFileState",
        "ActiveState",
        "After",
        "Restart",
        "MainPID",
        "StartLimitIntervalUSec",
        "StartLimitBurst",
    )
    shown = output(["systemctl", "show", UNIT, *(f"--property={name}" for name in properties)])
    return dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)


def server_process(owner: str) -> dict[str, object]:
    """The unit's main process: its users (real, effective, saved, filesystem), command line, cwd and HOME.
    Its cwd and environment are read as the owner: root may lack the capability (as in a container)."""
    pid = unit().get("MainPID", "0")
    if pid == "0":
        return {"pid": 0}
    proc = Path("/proc", pid)
    uids = next(line.split()[1:] for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
    as_owner = ["runuser", "-u", owner, "--"]
    environ = output([*as_owner, "cat", f"{proc}/environ"]).split("\0")
    return {
        "pid": int(pid),
        "users": [pwd.getpwuid(int(uid)).pw_name for uid in uids],
        "cmdline": (proc / "cmdline").read_bytes().decode(errors="replace").split("\0"),
        "cwd": output([*as_owner, "readlink", f"{proc}/cwd"]),
        "home": next((item[5:] for item in environ if item.startswith("HOME=")), None),
    }


def server_list(owner: str, venv: str) -> list[object]:
    listing = output(["runuser", "-u", owner, "--", f"{venv}/bin/jupyter", "server", "list", "--json"])
    return [json.loads(line) for line in listing.splitlines() if line.startswith("{")]


def owner_writable(owner: str) -> list[str]:
    """What the owner could write under the image's own folders (the first 20 paths)."""
    found = sh(["runuser", "-u", owner, "--", "find", "/opt/visa", "/etc/visa", "-writable"])
    return str(found["stdout"]).splitlines()[:20]


def listening() -> list[str]:
    """Local addresses of listening TCP sockets, as addr:port."""
    return sorted({line.split()[3] for line in output(["ss", "-Hltn"]).splitlines() if len(line.split()) > 3})


def direct_status(port: int, path: str) -> int:
    """Status code of a GET straight to the server on the target, bypassing any proxy."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def labextensions(venv: str) -> str:
    """`jupyter labextension list` as a user reads it (it writes to stderr), colours removed."""
    listed = subprocess.run(
        [f"{venv}/bin/jupyter", "labextension", "list"], capture_output=True, text=True, errors="replace", timeout=600
    )
    return ANSI.sub("", listed.stdout + listed.stderr)


def journal_count(pattern: str) -> int:
    """Lines of this boot's journal that match `pattern` (case-insensitive), leaving out sudo's command logs."""
    lines = output(["journalctl", "-b", "-o", "cat", "--no-pager"]).splitlines()
    return sum(1 for line in lines if "COMMAND=" not in line and re.search(pattern, line, re.IGNORECASE))


def sudo_rules_naming(user: str) -> list[str]:
    files = [Path("/etc/sudoers"), *sorted(Path("/etc/sudoers.d").glob("*"))]
    return [str(f) for f in files if f.is_file() and re.search(rf"\b{re.escape(user)}\b", f.read_text())]


def files_holding(text: str, roots: list[str]) -> list[str]:
    result = sh(["grep", "-rlF", text, *roots])
    return str(result["stdout"]).splitlines()


def build_user() -> dict[str, object]:
    try:
        pwd.getpwnam(BUILD_USER)
        exists = True
    except KeyError:
        exists = False
    return {
        "exists": exists,
        "home_exists": Path("/home", BUILD_USER).exists(),
        "sudo_rules": sudo_rules_naming(BUILD_USER),
    }


def main() -> None:
    request = json.loads(base64.b64decode(sys.argv[-1]))
    venv, data_analysis = request["jupyterlab"], request["data_analysis"]
    seconds: dict[str, float] = {}

    def gather(name: str, probe: Callable[[], object]) -> object:
        started = time.monotonic()
        try:
            return probe()
        except Exception as error:  # a fact that cannot be gathered is reported to its tests, not fatal
            return {"error": f"{type(error).__name__}: {error}"}
        finally:
            seconds[name] = round(time.monotonic() - started, 1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        meta = pool.submit(gather, "metadata", metadata)

        def owner() -> str:
            found = meta.result()
            if not isinstance(found, dict) or "owner" not in found:
                raise RuntimeError(f"the owner is not known: the metadata could not be gathered ({found})")
            return str(found["owner"])

        probes: dict[str, Callable[[], object]] = {  # the slowest first, so four at a time finish together
            **{
                f"env:{prefix}": functools.partial(environment, prefix, prefix == venv)
                for prefix in (venv, data_analysis)
            },
            "labextensions": lambda: labextensions(venv),
            "debian_packages": debian_packages,
            "apt_sources": apt_sources,
            "kernelspecs": lambda: kernelspecs(venv),
            "site": site_settings,
            **{f"import:{module}": importer(f"{data_analysis}/bin/python", module) for module in request["imports"]},
            "server_list": lambda: server_list(owner(), venv),
            "server_process": lambda: server_process(owner()),
            "owner_writable": lambda: owner_writable(owner()),
            "unit": unit,
            "listening": listening,
            "server_config": lambda: json.loads(output([f"{venv}/bin/python", "-c", LOAD_CONFIG, request["config"]])),
            "failed_units": lambda: output(["systemctl", "list-units", "--failed", "--plain", "--no-legend"]),
            "cloud_init_status": lambda: sh(["cloud-init", "status", "--long"])["stdout"],
            "direct_status": lambda: {path: direct_status(request["port"], path) for path in ("/api/status",)},
        }
        if request["vm"]:
            probes.update(
                {
                    "build_user": build_user,
                    "build_key_files": lambda: (
                        files_holding(request["build_key"], ["/root", "/home", "/etc/ssh"])
                        if request["build_key"]
                        else None
                    ),
                    "cloud_instance_id": lambda: output(["cloud-init", "query", "instance_id"]),
                    "cloud_instances": lambda: sorted(os.listdir("/var/lib/cloud/instances")),
                    "machine_id_initialised": lambda: journal_count("Initializing machine ID"),
                    "unit_verify": lambda: sh(["systemd-analyze", "verify", f"/etc/systemd/system/{UNIT}"]),
                    "ordering_cycles": lambda: journal_count("ordering cycle"),
                }
            )
        running = {name: pool.submit(gather, name, probe) for name, probe in probes.items()}
        facts = {"metadata": meta.result(), **{name: future.result() for name, future in running.items()}}
    facts["probe_seconds"] = seconds  # how long each fact took, for a slow target's diagnosis
    json.dump(facts, sys.stdout)


if __name__ == "__main__":
    main()
