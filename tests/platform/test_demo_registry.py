"""Demo steps are registered by the applications (no upward import) and run in page order."""

from __future__ import annotations

import pytest

from photonpipe.demo import DEMO_MODULES, demo_steps
from photonpipe.platform import demo as platform_demo
from photonpipe.platform.demo import DemoSection, register_demo_step


def test_the_four_applications_register_their_steps_in_page_order() -> None:
    steps = demo_steps()
    assert [name for name, _ in steps] == ["light curves", "sky", "stellar", "echelle"]
    # each step is the `step` function of the module that registered it, in DEMO_MODULES order
    assert [step.__module__ for _, step in steps] == list(DEMO_MODULES)
    assert all(step.__name__ == "step" for _, step in steps)


def test_a_second_step_under_a_registered_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_demo, "_STEPS", {})

    def first(*_: object) -> DemoSection:
        return DemoSection("first")

    def second(*_: object) -> DemoSection:
        return DemoSection("second")

    register_demo_step("x", first, order=2)
    register_demo_step("x", first, order=2)  # the same registration again (a re-import) is fine
    register_demo_step("a", second, order=1)
    assert platform_demo.registered_demo_steps() == [("a", second), ("x", first)]
    with pytest.raises(ValueError, match="demo step 'x' is already registered"):
        register_demo_step("x", second, order=2)
