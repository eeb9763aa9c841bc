"""Settings for the property tests: derandomized in CI, a random hunt on demand.

In CI every property test runs a fixed set of examples (``derandomize``: the same ones on every
run, so a red build is reproducible and a green one means the same thing each time).
``HOSTILE_EXAMPLES=N`` turns the same tests into a random hunt of ``N`` examples each, e.g.
``HOSTILE_EXAMPLES=2000 pytest tests/unit/test_hostile_world.py``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings

HUNT = int(os.environ.get("HOSTILE_EXAMPLES", "0"))


def hostile_settings(ci_examples: int, **extra: Any) -> settings:
    """``ci_examples`` fixed examples in CI; ``HOSTILE_EXAMPLES`` random ones in a hunt."""
    hunting = HUNT > 0
    return settings(
        max_examples=HUNT if hunting else ci_examples,
        derandomize=not hunting,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        # Shrinking a long virtual run can take minutes; a hunt reports what it found as found.
        phases=[Phase.explicit, Phase.generate] if extra.pop("no_shrink", False) else list(Phase),
        **extra,
    )
