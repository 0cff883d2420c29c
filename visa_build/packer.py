"""Driving Packer: var files and argv (pure), `-machine-readable` output parsed into events, artefacts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .resources import project_files

TEMPLATES = project_files() / "packer"
#: Packer from 1.7 on finds the QEMU builder only as a plugin; 1.6 rejects the block that asks for it.
PLUGINS_FILE = TEMPLATES / "plugins" / "required-plugins.pkr.hcl"
#: "qemu.visa: " before a build's output: the source (type.name) it came from.
_SOURCE_PREFIX = re.compile(r"^[\w-]+\.[\w-]+: ")
VarValue = str | bool | int | Sequence[str] | Mapping[str, str]


def _hcl_string(value: str) -> str:
    """An HCL string literal that Packer reads back unchanged (no template interpolation). Non-ASCII text stays
    UTF-8: Packer 1.6 rejects JSON's surrogate pairs (an emoji as \\ud83d\\ude80)."""
    return json.dumps(value, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")


def _hcl_value(value: VarValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _hcl_string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_hcl_string(k)} = {_hcl_string(v)}" for k, v in sorted(value.items()))
        return "{ " + inner + " }" if inner else "{}"
    return "[" + ", ".join(_hcl_string(item) for item in value) + "]"


def var_file(values: Mapping[str, VarValue]) -> str:
    """A .pkrvars.hcl file setting `values` (one line each, sorted); write it as UTF-8."""
    return "".join(f"{name} = {_hcl_value(value)}\n" for name, value in sorted(values.items()))


def needs_plugin_block(version: tuple[int, ...]) -> bool:
    return version >= (1, 7)


def parse_version(text: str) -> tuple[int, ...]:
    """(1, 6, 6) from `packer version` output such as 'Packer v1.6.6'."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(f"no version in {text!r}")
    return tuple(int(part) for part in match.groups())


def build_argv(program: str, template_dir: Path, var_path: Path) -> list[str]:
    """packer build (`program`: packer_binary.choose's): machine-readable events, and on error Packer cleans up (the
    VM is stopped and removed)."""
    return [program, "build", "-machine-readable", "-on-error=cleanup", f"-var-file={var_path}", str(template_dir)]


def validate_argv(program: str, template_dir: Path, var_path: Path) -> list[str]:
    return [program, "validate", f"-var-file={var_path}", str(template_dir)]


def fmt_check_argv(program: str, template_dir: Path) -> list[str]:
    return [program, "fmt", "-check", "-diff", str(template_dir)]


def init_argv(program: str, template_dir: Path) -> list[str]:
    return [program, "init", str(template_dir)]


@dataclass(frozen=True)
class Event:
    """One line of `packer build -machine-readable`: kind is 'step', 'message', 'error' or 'artifact'."""

    kind: str
    text: str
    fields: tuple[str, ...] = ()


def _unescape(text: str) -> str:
    return text.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")


def parse_line(line: str) -> Event | None:
    """Parse `timestamp,target,type,data...`; None for lines that are not machine-readable events."""
    parts = line.split(",")
    if len(parts) < 3 or not parts[0].isdigit():
        return None
    kind, data = parts[2], [_unescape(part) for part in parts[3:]]
    if kind == "ui" and len(data) >= 2:
        level, text = data[0], ",".join(data[1:]).strip()
        announced = text.startswith("==> ")  # Packer's own step announcements
        text = _SOURCE_PREFIX.sub("", text.removeprefix("==> ").removeprefix("--> "))
        if level == "error":
            return Event("error", text)
        return Event("step" if announced else "message", text)
    if kind == "artifact":
        return Event("artifact", ",".join(data), tuple(data))
    return None


@dataclass
class BuildLog:
    """What a packer build reported: its errors and the files of its artefacts."""

    errors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def handler(self, on_step: Callable[[str], None], on_message: Callable[[str], None]) -> Callable[[str], None]:
        """A line handler for process.run: steps and messages to the callbacks, errors and files kept."""

        def handle(line: str) -> None:
            event = parse_line(line)
            if event is None:
                return
            if event.kind == "step":
                on_step(event.text)
            elif event.kind == "error":
                self.errors.append(event.text)
                on_message(event.text)
            elif event.kind == "message":
                for text in event.text.splitlines():
                    on_message(text)
            elif len(event.fields) >= 4 and event.fields[1] == "file":  # artifact,<n>,file,<i>,<path>
                self.files.append(event.fields[3])

        return handle
