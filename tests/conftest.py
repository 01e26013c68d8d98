"""Isolation every test gets."""

import os

import pytest

from vtbench.bench.metric_weights import NO_FETCH_ENV


@pytest.fixture(autouse=True)
def _fetch_flag_restored(monkeypatch):
    """`vtbench run --no-fetch` sets VTBENCH_NO_FETCH in the process it runs in; a test that calls the CLI in
    process must not leave it set for the tests after it (they would find the metric weights unfetchable on a
    machine whose cache is empty)."""
    monkeypatch.setenv(NO_FETCH_ENV, os.environ.get(NO_FETCH_ENV, "0"))
