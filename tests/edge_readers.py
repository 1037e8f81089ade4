"""A fixture that runs a module's tests with each RAPL edge reader: the native one (built at
install where a C compiler is found, see ``hatch_build.py``) and the pure-Python one. Their
readings must be the same, faults and wraps included; ``test_native_edge.py`` checks that the
native one is built wherever it can be, so that its runs here are not skipped unseen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import wattprint.sensors.rapl as rapl


@pytest.fixture(autouse=True, scope="module", params=["native", "python"])
def each_edge_reader(request: pytest.FixtureRequest) -> Iterator[str]:
    """Module-scoped (hypothesis's tests take no function-scoped fixture): the module's
    tests run once with each reader."""
    native = rapl._read_counters
    if request.param == "native" and native is None:
        pytest.skip("the native edge reader is not built here")
    if request.param == "python":
        rapl._read_counters = None
    try:
        yield request.param
    finally:
        rapl._read_counters = native
