"""tests/vm reuse the infra suite's fixtures (the target's facts, its metadata and its Jupyter URL)."""

from tests.infra.conftest import facts, instance, jupyter  # noqa: F401  (fixtures, found by pytest by name)
