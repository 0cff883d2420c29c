"""The nightly test publishes to a real Glance (tests/glance.py)."""

from tests.glance import clouds  # noqa: F401  (the fixture)
