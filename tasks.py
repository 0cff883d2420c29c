"""visa-build's tasks for invoke in this checkout (`./visa-build`, `invoke --list`): the collection lives in the
package, as `visa_build.cli`, so an installed visa-build has the same tasks."""

from visa_build.cli import ns

__all__ = ["ns"]
