"""The benchmark's cold run is checked to be cold: every cache absent before it and present after it, every step
of the build run (bench/build_qcow2.py's pure part)."""

from __future__ import annotations

from build_qcow2 import COLD_STEPS, WARM_BASE, not_cold

ABSENT = {"Docker base image": False, "wheelhouse": False, "Docker filesystem image": False, "filled disk": False}
PRESENT = dict.fromkeys(ABSENT, True)
ALL_STEPS = dict.fromkeys(COLD_STEPS, 60.0)


def test_a_run_that_built_everything_is_cold() -> None:
    assert not_cold(ABSENT, PRESENT, ALL_STEPS, warm=set()) == []


def test_a_base_image_left_from_before_makes_the_run_not_cold() -> None:
    """What happened when the bench removed the base by a tag without the build's base generation."""
    before = {**ABSENT, "Docker base image": True}
    assert not_cold(before, PRESENT, ALL_STEPS, warm=set()) == ["Docker base image was there before the cold run"]
    assert not_cold(before, PRESENT, ALL_STEPS, warm=WARM_BASE) == [], "--warm-base keeps the base on purpose"


def test_a_cache_missing_after_or_a_step_not_run_is_reported() -> None:
    after = {**PRESENT, "filled disk": False}
    steps = {"docker": 300.0}
    assert not_cold(ABSENT, after, steps, warm=set()) == [
        "filled disk is missing after the cold run",
        "step fill did not run",
        "step seal did not run",
    ]
