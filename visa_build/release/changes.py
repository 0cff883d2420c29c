"""What changed between two releases of a spec: Debian and Python packages added, removed, upgraded and
downgraded; Debian changes whose new version comes from the -security suite are marked as such, and a security
upgrade names the CVEs it fixes (fixes.py reads them from the image)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from packaging.version import InvalidVersion, Version

from .manifest import Manifest, system_part

#: The part of the changes that holds the distribution's packages (CHANGES.md's heading).
SYSTEM = "System packages"


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit() or not char:
        return 0
    return ord(char) if char.isalpha() else ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision: non-digit runs by character order (~ first),
    digit runs by value."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac, bc = _order(a[i] if i < len(a) else ""), _order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        left, right = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if left != right:
            return -1 if left < right else 1
    return 0


def compare_debian(a: str, b: str) -> int:
    """<0, 0 or >0 as Debian version `a` is older than, equal to or newer than `b` (dpkg's rules)."""

    def split(version: str) -> tuple[int, str, str]:
        epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), upstream, revision

    (ea, ua, ra), (eb, ub, rb) = split(a), split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


def compare_python(a: str, b: str) -> int:
    try:
        left, right = Version(a), Version(b)
    except InvalidVersion:
        return (a > b) - (a < b)
    return (left > right) - (left < right)


@dataclass
class PartChanges:
    added: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    removed: list[tuple[str, str]] = field(default_factory=list)
    upgraded: list[tuple[str, str, str]] = field(default_factory=list)  # (name, old, new)
    downgraded: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.upgraded or self.downgraded)


def diff(old: dict[str, str], new: dict[str, str], compare: Callable[[str, str], int]) -> PartChanges:
    """Changes from {name: version} `old` to `new`, versions ordered by `compare`."""
    changes = PartChanges()
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before is None and after is not None:
            changes.added.append((name, after))
        elif after is None and before is not None:
            changes.removed.append((name, before))
        elif before != after and before is not None and after is not None:
            (changes.upgraded if compare(after, before) > 0 else changes.downgraded).append((name, before, after))
    return changes


def between(old: Manifest, new: Manifest) -> dict[str, PartChanges]:
    """{SYSTEM: ..., <environment>: ...} for every part of the manifests."""
    system = [system_part(manifest)["packages"] for manifest in (old, new)]
    parts = {SYSTEM: diff(system[0], system[1], compare_debian)}
    for prefix in sorted(set(old["python"]) | set(new["python"])):
        versions = [
            {name: entry["version"] for name, entry in manifest["python"].get(prefix, {}).items()}
            for manifest in (old, new)
        ]
        parts[f"Python {prefix}"] = diff(versions[0], versions[1], compare_python)
    return parts


def is_security(name: str, version: str, security: dict[str, str]) -> bool:
    """Whether Debian package `name` (dpkg's `libssl3:amd64` or `bash`) at `version` comes from the -security
    suite, whose index `security` ({package: version}) names packages without their architecture."""
    return security.get(name.split(":")[0]) == version


def security_updates(parts: dict[str, PartChanges] | None, security: dict[str, str]) -> list[tuple[str, str, str]]:
    """(name, old, new) of each Debian package upgraded to the -security suite's version."""
    upgraded = parts[SYSTEM].upgraded if parts else []
    return [(name, old, new) for name, old, new in upgraded if is_security(name, new, security)]


def _fixed(fixes: list[str] | None) -> str:
    if fixes is None:
        return ": its changelog is not in the image"
    return f": fixes {', '.join(fixes)}" if fixes else ": its changelog names no CVE"


def to_markdown(
    title: str,
    parts: dict[str, PartChanges] | None,
    security: dict[str, str],
    fixes: dict[str, list[str] | None] | None = None,
) -> str:
    """CHANGES.md. `security`: {package: version} in the -security suite; parts None: no usable previous
    release to compare with; `fixes`: {package: CVE ids} of the security updates whose changelog was read."""
    lines = [f"# {title}", ""]
    if parts is None:
        return "\n".join([*lines, "No usable previous release of this spec: nothing to compare with.", ""])
    if not any(parts.values()):
        return "\n".join([*lines, "No package changed.", ""])
    fixes = fixes or {}

    def mark(part: str, name: str, version: str) -> str:
        return " (security)" if part == SYSTEM and is_security(name, version, security) else ""

    def upgraded(part: str, name: str, old: str, new: str) -> str:
        line = f"- upgraded {name} {old} -> {new}{mark(part, name, new)}"
        return line + _fixed(fixes[name]) if part == SYSTEM and name in fixes else line

    for part, changes in parts.items():
        if not changes:
            continue
        lines += [f"## {part}", ""]
        lines += [f"- added {name} {version}{mark(part, name, version)}" for name, version in changes.added]
        lines += [f"- removed {name} {version}" for name, version in changes.removed]
        lines += [upgraded(part, name, old, new) for name, old, new in changes.upgraded]
        lines += [f"- downgraded {name} {old} -> {new}{mark(part, name, new)}" for name, old, new in changes.downgraded]
        lines.append("")
    return "\n".join(lines)
