"""Selftests: unit tests of the suite and fault injection against the twin.

pytest selftests -m "not twin"        # no Docker needed
pytest selftests -m twin_preinstall   # twin down: faults that only make sense before install
pytest selftests -m twin              # twin up (--stack twin --keep-up): the fault table
pytest selftests -m "twin and not slow_fault"   # without the faults that restart the stack
pytest selftests -m twin_images       # builds the twin's images under test tags and runs them
                                      # beside a running twin (selftests/twin_images.py)
pytest selftests -m nuclio_twin       # Docker: a private Nuclio dashboard twin, its conformance
pytest selftests -m lambda_twin       # Docker: a private CVAT twin, stub dashboard and functions,
                                      # the lambda recordings replayed (selftests/lambda_twin.py)
"""

import pytest

pytest_plugins = ["pytester"]

# Function handlers that run inside the twin's function images, not test modules; their
# main.py files would also clash by name under --doctest-modules.
collect_ignore_glob = ["data/nuclio-test-functions/*", "lambda_stub/*"]


def pytest_configure(config):
    config.addinivalue_line("markers", "twin: needs the CI twin running (fault injection)")
    config.addinivalue_line(
        "markers", "gpu: needs an NVIDIA GPU (nvidia-smi answering); skips, saying so, elsewhere"
    )
    config.addinivalue_line("markers", "twin_preinstall: needs the CI twin down")
    config.addinivalue_line(
        "markers", "slow_fault: a fault that takes the whole stack down and up again (minutes)"
    )
    config.addinivalue_line(
        "markers", "twin_images: builds and runs the twin's images under test names (Docker)"
    )
    config.addinivalue_line(
        "markers", "wheel: runs the wheel installed by scripts/wheel-venv.sh (outside the checkout)"
    )
    config.addinivalue_line(
        "markers", "nuclio_twin: builds and runs a private Nuclio dashboard twin (needs Docker)"
    )
    config.addinivalue_line(
        "markers",
        "lambda_twin: builds and runs a private CVAT twin with stub Nuclio dashboard and functions"
        " (needs Docker)",
    )


@pytest.fixture(scope="session")
def lab():
    """A Lab (selftests/twin_images.py) whose containers, network and tags go at the end,
    whatever the tests did."""
    from selftests.twin_images import Lab, docker_available

    if not docker_available():
        pytest.skip("no Docker engine reachable")
    session = Lab()
    try:
        yield session
    finally:
        session.cleanup()
        if session.build_seconds:
            times = ", ".join(f"{k} {v:.0f} s" for k, v in session.build_seconds.items())
            print(f"\n[twin_images] build times: {times}")
