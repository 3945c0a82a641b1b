"""Missing test dependencies: skip on a developer's machine, fail in CI (no test may skip there)."""

from __future__ import annotations

import os

import pytest


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when CI=true (the project's rule for missing test dependencies)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: tests may not skip for a missing dependency)", pytrace=False)
    pytest.skip(reason)
