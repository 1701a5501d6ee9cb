"""uv.lock, pyproject.toml's ranges and the releases the twin's images pin.

pyproject.toml states ranges (the plugin installs beside a lab's own packages); uv.lock names the
exact releases CI runs (scripts/bootstrap.sh installs them). Where a twin image pins a package the
lock also holds, the two must agree when the selftests stand in for the image with the lock's
release; where they may differ, the tables below say why.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = "twin/bridge/Dockerfile"
FUNCTION = "twin/images/nuclio-processor/Dockerfile"

# Releases the twin's images pin (Dockerfile ARGs) that must be the lock's: the selftests drive
# the twin, and call its code in-process, with the lock's release of the same package.
IMAGE_PINS_OF_THE_LOCK = {
    (BRIDGE, "CVAT_SDK_VERSION"): "cvat-sdk",  # the bridge's client, the suite's too
    (FUNCTION, "NUCLIO_SDK_VERSION"): "nuclio-sdk",  # Nuclio 1.13's processor pins it
}
# Releases the twin's images pin that may differ from the lock's: (package, whether pyproject's
# range admits it, why).
IMAGE_PINS_OF_THEIR_OWN = {
    (BRIDGE, "CVAT_SDK_OLD_VERSION"): (
        "cvat-sdk",
        False,
        "an older client beside the bridge's, off sys.path, for the faults that run the bridge "
        "with it: its SUPPORTED_SERVER_VERSIONS stop before CVAT 2.29, so no suite runs it",
    ),
    (FUNCTION, "NUMPY_VERSION"): (
        "numpy",
        True,
        "the function image is Debian bookworm's Python for Nuclio's processor, not the suite's "
        "environment; the suite's range starts at this release, so scripts/lowest-deps.sh runs "
        "the reference functions in-process with it",
    ),
    (FUNCTION, "OPENCV_VERSION"): (
        "opencv-python-headless",
        True,
        "as numpy: the function image's own, and the lower bound of the dev extra's range",
    ),
}
# The only exact pins pyproject.toml may hold, and why each must be exactly that release.
EXACT_PINS = {
    "nuclio-sdk": "the release Nuclio 1.13.0's processor pins, as in the function image",
    "fastapi": "Debian bookworm's, which the bridge image runs (python3-fastapi)",
    "pydantic": "Debian bookworm's, under the bridge image's FastAPI",
    "starlette": "the only release FastAPI 0.92.0 accepts from PyPI (Debian patches 0.26.1 in)",
}


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _lock() -> dict:
    with open(ROOT / "uv.lock", "rb") as f:
        return tomllib.load(f)


def _requirements() -> dict[str | None, list[Requirement]]:
    """pyproject.toml's requirements by extra (None: the suite's own)."""
    project = _project()
    groups = {None: project["dependencies"], **project.get("optional-dependencies", {})}
    return {extra: [Requirement(r) for r in reqs] for extra, reqs in groups.items()}


def _range_of(package: str) -> SpecifierSet:
    for req in itertools.chain.from_iterable(_requirements().values()):
        if canonicalize_name(req.name) == package:
            return req.specifier
    raise AssertionError(f"{package} is in no list of pyproject.toml")


def _locked_versions(package: str) -> set[str]:
    # A universal lock may hold several releases of one package (one per Python fork).
    return {p["version"] for p in _lock()["package"] if p["name"] == package}


def _image_pins() -> dict[tuple[str, str], str]:
    """Every `ARG <NAME>_VERSION=<release>` of the twin's Dockerfiles."""
    pins = {}
    for path in sorted((ROOT / "twin").rglob("Dockerfile*")):
        for name, value in re.findall(r"^ARG\s+(\w+_VERSION)=(\S+)\s*$", path.read_text(), re.M):
            pins[(str(path.relative_to(ROOT)), name)] = value
    return pins


def test_every_release_a_twin_image_pins_is_in_one_table():
    # A new pinned release in an image must say whether it has to be the lock's.
    assert set(_image_pins()) == set(IMAGE_PINS_OF_THE_LOCK) | set(IMAGE_PINS_OF_THEIR_OWN)


@pytest.mark.parametrize(("dockerfile", "arg"), sorted(IMAGE_PINS_OF_THE_LOCK))
def test_the_image_pins_the_locked_release(dockerfile, arg):
    package = IMAGE_PINS_OF_THE_LOCK[(dockerfile, arg)]
    assert _locked_versions(package) == {_image_pins()[(dockerfile, arg)]}, (
        f"{dockerfile} {arg} and uv.lock's {package} differ: change both"
    )


@pytest.mark.parametrize(("dockerfile", "arg"), sorted(IMAGE_PINS_OF_THEIR_OWN))
def test_an_image_release_of_its_own_lies_where_its_reason_says(dockerfile, arg):
    package, admitted, why = IMAGE_PINS_OF_THEIR_OWN[(dockerfile, arg)]
    release = Version(_image_pins()[(dockerfile, arg)])
    assert (release in _range_of(package)) is admitted, f"{dockerfile} {arg} {release}: {why}"


def test_every_dependency_is_a_range_or_an_exact_pin_with_a_reason():
    pinned, unbounded = set(), []
    for req in itertools.chain.from_iterable(_requirements().values()):
        ops = {s.operator for s in req.specifier}
        if ops & {"==", "==="}:
            pinned.add(canonicalize_name(req.name))
        elif not (ops & {">=", ">", "~="} and ops & {"<", "<=", "~="}):
            unbounded.append(str(req))
    assert not unbounded, "a range needs a lower and an upper bound"
    # Both ways: a pin without a reason, and a reason left behind by a pin that became a range.
    assert pinned == set(EXACT_PINS)


def _grid() -> list[dict[str, str]]:
    """Environments enough to tell the markers of pyproject.toml and uv.lock apart."""
    extras = ["", *_project().get("optional-dependencies", {})]
    return [
        {
            "python_full_version": py,
            "python_version": py.rsplit(".", 1)[0],
            "sys_platform": pf,
            "platform_system": ps,
            "extra": extra,
        }
        for py in ("3.11.0", "3.12.0", "3.13.0", "3.14.0")
        for pf, ps in (("linux", "Linux"), ("win32", "Windows"), ("darwin", "Darwin"))
        for extra in extras
    ]


def _entry(name, specifier, extras, marker) -> tuple[tuple, str]:
    """A requirement as (what it means, how to name it): markers as where they apply."""
    applies = tuple(marker is None or marker.evaluate(env) for env in _grid())
    name = canonicalize_name(name)
    shown = f"{name}{'[' + ','.join(sorted(extras)) + ']' if extras else ''}{specifier}"
    if marker is not None:
        shown += f"; {marker}"
    return (name, SpecifierSet(specifier), frozenset(extras), applies), shown


def test_the_lock_records_pyproject_requirements():
    # Offline and without uv: what the lock was resolved for, against pyproject.toml now.
    project, lock = _project(), _lock()
    root = next(p for p in lock["package"] if p["name"] == canonicalize_name(project["name"]))
    want = {}
    for extra, reqs in _requirements().items():
        for req in reqs:
            marker = req.marker
            if extra is not None:
                marker = Marker(f"extra == '{extra}'" + (f" and ({marker})" if marker else ""))
            key, shown = _entry(req.name, str(req.specifier), req.extras, marker)
            want[key] = shown
    got = {}
    for r in root["metadata"]["requires-dist"]:
        marker = Marker(r["marker"]) if "marker" in r else None
        key, shown = _entry(r["name"], r.get("specifier", ""), r.get("extras", ()), marker)
        got[key] = shown
    only_pyproject = sorted(want[k] for k in want.keys() - got.keys())
    only_lock = sorted(got[k] for k in got.keys() - want.keys())
    assert not (only_pyproject or only_lock), (
        f"uv.lock is older than pyproject.toml: run `uv lock` (pyproject.toml only: "
        f"{only_pyproject}; uv.lock only: {only_lock})"
    )
    assert SpecifierSet(lock["requires-python"]) == SpecifierSet(project["requires-python"])


def test_the_locked_releases_lie_in_the_ranges():
    # The lower bounds never rise above what CI runs, and the lock never leaves a range.
    outside = [
        f"{req.name} {v} not in {req.specifier}"
        for req in itertools.chain.from_iterable(_requirements().values())
        for v in _locked_versions(canonicalize_name(req.name))
        if Version(v) not in req.specifier
    ]
    assert not outside


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"  # bootstrap.sh and lowest-deps.sh install it
    return str(beside) if beside.is_file() else shutil.which("uv")


def test_uv_finds_the_lock_current():
    uv = _uv()
    if uv is None:
        pytest.skip("no uv beside this Python nor on PATH (scripts/bootstrap.sh installs it)")
    wanted = re.search(r"^UV_VERSION=(\S+)", (ROOT / "scripts/uv-version.sh").read_text(), re.M)
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    if version.stdout.split()[1] != wanted[1]:
        pytest.skip(
            f"{uv} is {version.stdout.strip()}, not the uv {wanted[1]} that writes the lock"
        )
    # --offline: the lock holds every package's metadata; this fetches nothing.
    result = subprocess.run(
        [uv, "lock", "--check", "--offline", "--python", sys.executable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
