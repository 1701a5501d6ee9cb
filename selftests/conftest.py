"""Selftests: unit tests of the suite and fault injection against the twin.

pytest selftests -m "not twin"        # no Docker needed
pytest selftests -m twin_preinstall   # twin down: faults that only make sense before install
pytest selftests -m twin              # twin up (--stack twin --keep-up): the fault table
pytest selftests -m nuclio_twin       # Docker: a private Nuclio dashboard twin, its conformance
"""

pytest_plugins = ["pytester"]

# Function handlers that run inside the twin's function images, not test modules; their
# main.py files would also clash by name under --doctest-modules.
collect_ignore_glob = ["data/nuclio-test-functions/*"]


def pytest_configure(config):
    config.addinivalue_line("markers", "twin: needs the CI twin running (fault injection)")
    config.addinivalue_line("markers", "twin_preinstall: needs the CI twin down")
    config.addinivalue_line(
        "markers", "nuclio_twin: builds and runs a private Nuclio dashboard twin (needs Docker)"
    )
