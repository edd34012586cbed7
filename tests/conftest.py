"""Shared pytest configuration: hypothesis profiles, the one_thread and quick_digits_classifier
fixtures.

Profiles: ``dev`` (default, quick), ``ci`` (derandomized, no deadline; selected by the CI
environment variable or ``HYPOTHESIS_PROFILE=ci``).
"""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def quick_digits_classifier():
    """A briefly trained reference digits classifier (150 steps, ~3 s; the full one of
    ``minigen.evaluate.digits_classifier`` takes ~25 s of CPU)."""
    from minigen.evaluate import train_digits_classifier

    return train_digits_classifier(steps=150)


@pytest.fixture(scope="module")
def one_thread():
    """Small arrays: BLAS and Numba threads only cost time on a shared machine (see
    minigen.backend.limit_threads); the previous settings come back after the module."""
    import numba

    threadpoolctl = pytest.importorskip("threadpoolctl")
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(previous)

# tests/data holds fixtures and the scripts that made them, not tests: --doctest-modules must
# not import (and so run) those scripts
collect_ignore_glob = ["data/*"]
