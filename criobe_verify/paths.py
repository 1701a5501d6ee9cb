"""Where the suite's own files are, the same way in a checkout and in an installed wheel.

    >>> (CHECKS_DIR / "test_gateway.py").is_file(), (PROFILES_DIR / "twin.toml").is_file()
    (True, True)
    >>> (TWIN_DIR / "docker-compose.yml").is_file(), CI_OVERLAY.is_file()
    (True, True)

The repository keeps tests/, fixtures/, profiles/ and twin/ at its top level; the wheel
installs them as criobe_verify.tests, .fixtures, .profiles and .twin (pyproject.toml's
package-dir). Everything is found through importlib.resources, never from a path relative to
this file's checkout, so nothing here assumes a git clone or the caller's directory.
"""

from __future__ import annotations

import sysconfig
from importlib.resources import files
from pathlib import Path


def _package_dir(package: str) -> Path:
    return Path(str(files(package))).resolve()


PACKAGE_DIR = Path(__file__).resolve().parent
CHECKS_DIR = _package_dir("criobe_verify.tests")
FIXTURES_DIR = _package_dir("criobe_verify.fixtures")
PROFILES_DIR = _package_dir("criobe_verify.profiles")
TWIN_DIR = _package_dir("criobe_verify.twin")
# The rootdir of a run: node ids read tests/test_<layer>.py::… from a checkout and a wheel.
SUITE_ROOT = CHECKS_DIR.parent
SAMPLE_DIR = FIXTURES_DIR / "data" / "sample-quadrat"
GOLDEN_DIR = FIXTURES_DIR / "data" / "golden"
LABELS_DIR = PACKAGE_DIR / "data" / "criobe-labels"
# The CI overlay lives at the repository's top level; twin/ links to it so the wheel has it.
CI_OVERLAY = TWIN_DIR / "docker-compose.ci.yml"
# The suite's pytest settings (the repository's pytest.ini, linked into the package).
PYTEST_INI = PACKAGE_DIR / "data" / "pytest.ini"


def inside_installed_package(path: Path) -> bool:
    """Whether writing to `path` would change an installed distribution (site-packages, or
    the installed suite's own folder) rather than a checkout or a folder of the user's.

    >>> inside_installed_package(Path(sysconfig.get_paths()["purelib"]) / "x" / "golden")
    True
    >>> inside_installed_package(Path("/srv/lab/golden"))
    False
    """
    path = path.resolve()
    roots = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    if not (SUITE_ROOT / "pyproject.toml").is_file():  # not a checkout: the wheel's files
        roots.add(SUITE_ROOT)
    return any(path == root or root in path.parents for root in roots)
