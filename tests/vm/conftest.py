"""tests/vm reuse the infra suite's fixtures (the instance's metadata and its Jupyter URL)."""

from tests.infra.conftest import instance, jupyter  # noqa: F401  (fixtures, found by pytest by name)
