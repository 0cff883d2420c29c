"""Options of the nightly's end-to-end test (the test task passes them)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("visa-build").addoption(
        "--visa-build-dir", default=str(Path(__file__).resolve().parents[2] / "build"),
        help="the build folder whose caches the nightly reuses",
    )  # fmt: skip
