"""The files and folders a run is given, checked before anything runs: the checkout of
--stack up, the lab's sample photo and its ground truth, and where the reports go. Each check
raises InputError naming the file; none creates anything.

    >>> import tempfile
    >>> empty = tempfile.mkdtemp()
    >>> stack_checkout(empty)
    Traceback (most recent call last):
    ...
    criobe_verify.bad_input.InputError: --stack-dir ...: an empty directory, not a CRIOBE checkout; ...
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from criobe_verify.bad_input import InputError
from criobe_verify.compose import GUIDE_FILES, ComposeError, ComposeStack
from criobe_verify.redact import parse_env_lines

if TYPE_CHECKING:
    from criobe_verify.quadrat import GroundTruth

CHECKOUT = (
    "the CRIOBE checkout the install guide clones (docker-compose.yml, "
    "bridge/docker-compose.bridge.yml, components/serverless/docker-compose.serverless.yml, "
    "bridge/.env)"
)


def _existing_folder(option: str, path: Path, expected: str, fix: str) -> None:
    if not path.exists():
        raise InputError(f"{option} {path}", "no such directory", expected, fix)
    if not path.is_dir():
        raise InputError(f"{option} {path}", "not a directory", expected, fix)


def stack_checkout(directory: str | Path) -> ComposeStack:
    """--stack up's checkout: the guide's three compose files, and bridge/.env with the CVAT
    credentials the bring-up creates the admin with (the guide's Step 2)."""
    path = Path(directory)
    fix = "pass the folder `git clone --recurse-submodules` made (the one with docker-compose.yml)"
    _existing_folder("--stack-dir", path, CHECKOUT, fix)
    if not any(path.iterdir()):
        raise InputError(
            f"--stack-dir {path}", "an empty directory, not a CRIOBE checkout", CHECKOUT, fix
        )
    try:
        stack = ComposeStack.for_checkout(path)
    except ComposeError as exc:
        missing = [f for f in GUIDE_FILES if not (path / f).is_file()]
        raise InputError(
            f"--stack-dir {path}",
            f"not a CRIOBE checkout: missing {', '.join(missing)}",
            CHECKOUT,
            str(exc).rsplit("(", 1)[-1].rstrip(")"),
        ) from None
    env_file = path / "bridge" / ".env"
    if not env_file.is_file():
        raise InputError(
            f"--stack-dir {path}",
            "bridge/.env is missing",
            "the bridge's settings with CVAT_URL, CVAT_USER and CVAT_PWD (the guide's Step 2)",
            "create bridge/.env as the install guide's Step 2 says",
        )
    from criobe_verify.resources.bridge import credentials_from_env

    if credentials_from_env(parse_env_lines(env_file.read_text().splitlines())) is None:
        raise InputError(
            str(env_file),
            "no CVAT credentials",
            "CVAT_USER and CVAT_PWD (or CVAT_USERNAME and CVAT_PASSWORD), both set",
            "set them as the install guide's Step 2 says: the bring-up creates that admin",
        )
    return stack


def _cannot_write(path: Path) -> str | None:
    """Why files cannot be made at path (a file or folder to be), or None when they can.
    Nothing is left behind: the check makes a folder in the nearest existing one and removes
    it (as root, os.access says yes even on a read-only mount)."""
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        tempfile.TemporaryDirectory(dir=folder, prefix=".criobe-verify-").cleanup()
    except OSError as exc:
        return f"cannot write in {folder} ({exc.strerror or type(exc).__name__})"
    return None


def writable_output(option: str, file: str | Path) -> None:
    """A report file the run will write (--summary-json, --html, --junitxml)."""
    path = Path(file).expanduser().absolute()
    if path.is_dir():
        raise InputError(f"{option} {file}", "a directory", "a file path", "name a file inside it")
    problem = _cannot_write(path)
    if problem:
        raise InputError(
            f"{option} {file}",
            problem,
            "a place this user can create files in",
            "choose another place, or fix the folder's permissions",
        )


def reports_folder(directory: str | Path) -> Path:
    """The CLI's --reports DIR: a folder (existing or to be made) the run can write in."""
    path = Path(directory).expanduser().absolute()
    expected = "a folder for report.html, junit.xml and summary.json"
    if path.exists() and not path.is_dir():
        raise InputError(
            f"--reports {directory}",
            "a file, not a folder",
            expected,
            "name a folder (it is created when the run starts)",
        )
    problem = _cannot_write(path / "report.html")
    if problem:
        raise InputError(
            f"--reports {directory}",
            problem,
            expected + " that this user can create files in",
            "choose another place for the reports, or fix the folder's permissions",
        )
    return path


def sample_image(image: str | Path) -> None:
    """The lab's quadrat photo: a file that decodes whole (a truncated upload fails here, not
    in the middle of the inference layer)."""
    path = Path(image)
    expected = "a quadrat photo (JPEG or PNG) that opens whole"
    if not path.is_file():
        problem = "a directory" if path.is_dir() else "no such file"
        raise InputError(f"--sample-image {image}", problem, expected, "check the path")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
    except UnidentifiedImageError:
        raise InputError(
            f"--sample-image {image}", "not an image", expected, "pass the photo itself"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's truncated and corrupt files
        raise InputError(
            f"--sample-image {image}",
            f"not a readable image ({exc})",
            expected,
            "export or copy the photo again",
        ) from None


def _json_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    return files


def ground_truth(paths: Sequence[str | Path], image: str | Path) -> GroundTruth:
    """--ground-truth: COCO exports of the corner and grid projects (and the corals), or a
    ground_truth.json, that describe --sample-image."""
    given = [Path(p) for p in paths]
    expected = (
        "COCO exports of the corner project (4 keypoints) and the grid project (117 "
        "keypoints), or a ground_truth.json, for that photo"
    )
    for p in given:
        if not p.exists():
            raise InputError(f"--ground-truth {p}", "no such file", expected, "check the path")
    for f in _json_files(given):
        try:
            json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            where = f" (line {exc.lineno} column {exc.colno})" if hasattr(exc, "lineno") else ""
            raise InputError(
                f"--ground-truth {f}",
                f"not valid JSON{where}",
                expected,
                "export it again from CVAT (Export dataset → COCO Keypoints 1.0)",
            ) from None
    from criobe_verify.quadrat import load_ground_truth

    try:
        return load_ground_truth(given, image=image)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        detail = str(exc).strip("'\"")
        for p in given:  # the loader names the paths it was given; the line names them once
            detail = detail.removeprefix(f"{p}: ")
        raise InputError(
            "--ground-truth " + ", ".join(map(str, given)),
            f"not a COCO export of that quadrat: {detail or type(exc).__name__}",
            expected,
            "pass the corner and grid exports of the same photo",
        ) from None


def _named_images(path: Path) -> set[str]:
    """The stems of the images a ground-truth file or folder describes (COCO `images`'
    file_name; a ground_truth.json's photo)."""
    folder_truth = path / "ground_truth.json"
    files = [folder_truth] if path.is_dir() and folder_truth.is_file() else _json_files([path])
    stems = set()
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # ground_truth() says what is wrong with it
        if not isinstance(doc, dict):
            continue
        names = [im.get("file_name", "") for im in doc.get("images") or [] if isinstance(im, dict)]
        names.append((doc.get("photo") or {}).get("file_name", "") if doc.get("photo") else "")
        stems |= {Path(n).stem for n in names if n}
    return stems


def ground_truths(paths: Sequence[str | Path], images: Sequence[str | Path]) -> list:
    """Several --sample-image photos: each --ground-truth paired with the photos it names by
    file_name (the stem, as CVAT's exports name them); every ground truth must name a given
    photo and every photo have one. [(image, GroundTruth)] in the order the photos were given.
    """
    stems = {Path(i).stem: i for i in images}
    named = {Path(p): _named_images(Path(p)) for p in paths}
    for p in named:
        if not p.exists():
            raise InputError(
                f"--ground-truth {p}", "no such file", "a COCO export", "check the path"
            )
    for p, names in named.items():
        if not names & set(stems):
            says = ", ".join(sorted(names)) or "no image"
            raise InputError(
                f"--ground-truth {p}",
                f"names none of the --sample-image photos (it describes {says})",
                "each ground truth to name one of the photos given, by file_name",
                "add the photo it describes with --sample-image, or leave this file out",
            )
    out = []
    for stem, image in stems.items():
        mine = [p for p, names in named.items() if stem in names]
        if not mine:
            raise InputError(
                f"--sample-image {image}",
                "no --ground-truth names this photo (by file_name)",
                "COCO exports (or a ground_truth.json) whose images include "
                f"{Path(image).name}, for each photo",
                "add that photo's corner and grid exports with --ground-truth",
            )
        out.append((str(image), ground_truth(mine, image)))
    return out
