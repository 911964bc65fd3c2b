"""Test-wide settings.

Hypothesis' per-example deadline is a timing assertion: on a loaded machine (CI on two
cores, the suite beside other work) a correct example can take longer than 200 ms, so
the deadline is off for every property test. Failures are still shrunk and reported.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("galvana", deadline=None)
settings.load_profile("galvana")
