"""A function's model weights: where its spec says they are, and whether the file is there in
its container with a plausible size, as facts with the diagnosis of each way it can be wrong.

    weights = FunctionWeights(find, prober, fn, entry, strict=True)
    if not weights.sources:
        pytest.skip(weights.why_unknown())     # nothing names a path: nothing was verified
    for found in weights.files():
        expect(found.plausible, lambda: weights.why_implausible(found))

Where weights live is not documented for the CRIOBE functions, so the path comes from, in
this order: the profile's `weights` for the function (alone, when set), else every path its
spec as the dashboard lists it names: an spec.env value that is a weights file, a
spec.volumes mount of one, or a file the build fetches or copies (spec.build.commands, and
the RUN/COPY/ADD of spec.build.directives, relative paths resolved against the last WORKDIR
directive, else /opt/nuclio, where Nuclio puts a function's code). Each path says which
source named it.

The probe (probe_program.model_weights) stats the file inside the container, and digests it:
sha256 over its size, its first 8 MiB and its last 8 MiB ("sampled"), not the whole file (a
SAM ViT-H checkpoint is 2.4 GB: a full hash would cost seconds per run). A different model
file differs in size or in those bytes (the header and the last tensors), so the digest
changes with the model; it goes into the baseline's fingerprint (function/<fn>/weights).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from criobe_verify.diagnosis import Diagnosis
from criobe_verify.probe_answers import WeightsFile
from criobe_verify.profile import Function, Profile
from criobe_verify.resources.base import Declared, Resource, RunFacts

WEIGHT_SUFFIXES = (".pt", ".pth", ".onnx", ".ckpt", ".safetensors")
# Where Nuclio's Python runtime puts a function's code, and a build step without a WORKDIR
# directive is assumed to run (said in the source, so a wrong guess is visible).
DEFAULT_WORKDIR = "/opt/nuclio"
_URL_OR_PATH = re.compile(r"\S+")


@dataclass(frozen=True)
class WeightsSource:
    """A path where a function's weights should be, and what named it."""

    path: str
    source: str  # "profile", "spec.env MODEL_PATH", "spec.volumes models", "build command ..."


def _is_weights(word: str) -> bool:
    return word.split("?", 1)[0].lower().endswith(WEIGHT_SUFFIXES)


def _basename(url: str) -> str:
    return posixpath.basename(url.split("?", 1)[0].rstrip("/"))


def _at(workdir: str, path: str) -> str:
    return posixpath.normpath(posixpath.join(workdir, path))


def _fetched(words: list[str], workdir: str) -> list[str]:
    """Weights files one shell command leaves behind: wget/curl downloads, cp/mv copies.

    >>> _fetched(["wget", "-P", "/models", "https://h/x/yolo11m-seg.pt"], "/opt/nuclio")
    ['/models/yolo11m-seg.pt']
    >>> _fetched(["curl", "-L", "-o", "w/best.pt", "https://h/best.pt?dl=1"], "/opt/nuclio")
    ['/opt/nuclio/w/best.pt']
    >>> _fetched(["curl", "-O", "https://dl/sam_vit_h_4b8939.pth"], "/opt/nuclio/sam")
    ['/opt/nuclio/sam/sam_vit_h_4b8939.pth']
    >>> _fetched(["cp", "/tmp/big-lama.ckpt", "/opt/nuclio/models/"], "/")
    ['/opt/nuclio/models/big-lama.ckpt']
    """
    if not words:
        return []
    tool, args = posixpath.basename(words[0]), words[1:]
    if tool in ("wget", "curl"):
        out = prefix = None
        urls = []
        output_flag = ("-O", "--output-document") if tool == "wget" else ("-o", "--output")
        for i, word in enumerate(args):
            nxt = args[i + 1] if i + 1 < len(args) else ""
            if word in output_flag:
                out = nxt
            elif word.startswith("--output-document=") or word.startswith("--output="):
                out = word.split("=", 1)[1]
            elif word in ("-P", "--directory-prefix") and tool == "wget":
                prefix = nxt
            elif word.startswith("--directory-prefix="):
                prefix = word.split("=", 1)[1]
            elif "://" in word:
                urls.append(word)
        if out:
            return [_at(workdir, out)] if _is_weights(out) else []
        # curl without -o/-O writes to stdout: it leaves no file
        if tool == "curl" and not {"-O", "--remote-name", "-OL", "-LO"} & set(args):
            return []
        return [_at(_at(workdir, prefix or "."), _basename(u)) for u in urls if _is_weights(u)]
    if tool in ("cp", "mv", "COPY", "ADD"):
        paths = [w for w in args if not w.startswith("-")]
        if len(paths) < 2:
            return []
        *sources, target = paths
        if _is_weights(target):
            return [_at(workdir, target)]
        return [
            _at(workdir, posixpath.join(target, _basename(s))) for s in sources if _is_weights(s)
        ]
    return []


def _commands(line: str) -> Iterator[list[str]]:
    """A shell line's simple commands, split at &&, || and ;."""
    try:
        words = shlex.split(line, posix=True)
    except ValueError:
        words = line.split()
    command: list[str] = []
    for word in words:
        if word in ("&&", "||", ";", "|"):
            yield command
            command = []
        elif word.endswith(";"):
            command.append(word[:-1])
            yield command
            command = []
        else:
            command.append(word)
    yield command


def _build_paths(spec: Mapping[str, Any]) -> list[WeightsSource]:
    build = spec.get("build") or {}
    workdir = DEFAULT_WORKDIR
    found: list[WeightsSource] = []
    directives = build.get("directives") or {}
    steps = [
        *((d.get("kind") or "", d.get("value") or "", "directive") for d in directives.get("preCopy") or ()),
        *(("RUN", c, "command") for c in build.get("commands") or ()),
        *((d.get("kind") or "", d.get("value") or "", "directive") for d in directives.get("postCopy") or ()),
    ]  # fmt: skip
    for kind, value, what in steps:
        kind = kind.upper()
        if kind == "WORKDIR":
            workdir = _at(workdir, value.strip())
            continue
        if kind in ("COPY", "ADD"):
            commands: Iterator[list[str]] = iter([[kind, *value.split()]])
        elif kind == "RUN":
            commands = _commands(value)
        else:
            continue
        for words in commands:
            for path in _fetched(words, workdir):
                shown = value if len(value) <= 120 else value[:117] + "..."
                label = f"spec.build.{'commands' if what == 'command' else 'directives'} {kind}"
                found.append(WeightsSource(path, f"{label} `{shown}`"))
    return found


def weights_sources(fn: Function, entry: Mapping[str, Any] | None) -> tuple[WeightsSource, ...]:
    """Where the function's weights should be: the profile's path alone, else every path its
    spec (the dashboard's /api/functions entry) names, each path once with its first source.

    >>> from criobe_verify.profile import Function
    >>> fn = Function(name="pth-yolo-coralsegv4", role="corals")
    >>> entry = {"spec": {"env": [{"name": "MODEL_PATH", "value": "/opt/nuclio/w/best.pt"},
    ...     {"name": "CONF_THRESHOLD", "value": "0.25"}], "volumes": [{"volume": {"name":
    ...     "models", "hostPath": {"path": "/srv/models/best.pt"}}, "volumeMount": {"name":
    ...     "models", "mountPath": "/opt/nuclio/w/best.pt"}}]}}
    >>> weights_sources(fn, entry)
    (WeightsSource(path='/opt/nuclio/w/best.pt', source='spec.env MODEL_PATH'),)
    """
    if fn.weights:
        return (WeightsSource(fn.weights, "profile"),)
    spec = (entry or {}).get("spec") or {}
    found: list[WeightsSource] = []
    for var in spec.get("env") or ():
        value = str(var.get("value") or "")
        if value.startswith("/") and _is_weights(value):
            found.append(WeightsSource(posixpath.normpath(value), f"spec.env {var.get('name')}"))
    for volume in spec.get("volumes") or ():
        mount = volume.get("volumeMount") or {}
        path = mount.get("mountPath") or ""
        host = ((volume.get("volume") or {}).get("hostPath") or {}).get("path") or ""
        name = mount.get("name") or (volume.get("volume") or {}).get("name") or "?"
        if path.startswith("/") and (_is_weights(path) or _is_weights(host)):
            found.append(WeightsSource(posixpath.normpath(path), f"spec.volumes {name}"))
    found += _build_paths(spec)
    seen: dict[str, WeightsSource] = {}
    for source in found:
        seen.setdefault(source.path, source)
    return tuple(seen.values())


def directory_mounts(entry: Mapping[str, Any] | None) -> list[str]:
    """Volume mounts of a directory: weights may be in there, under a name nothing says."""
    spec = (entry or {}).get("spec") or {}
    return [
        (v.get("volumeMount") or {}).get("mountPath") or "?"
        for v in spec.get("volumes") or ()
        if not _is_weights((v.get("volumeMount") or {}).get("mountPath") or "")
    ]


@dataclass(frozen=True)
class FoundWeights:
    """One weights path as the probe found it, judged against the profile's minimum."""

    where: WeightsSource
    file: WeightsFile
    min_mb: float

    @property
    def plausible(self) -> bool:
        return self.file.ok and self.file.exists and self.file.size_mb >= self.min_mb

    def observed(self) -> str:
        f = self.file
        if not f.ok:
            return f"the probe failed: {f.error}"
        if not f.exists:
            return f"no file there ({f.why or 'not found'})"
        if f.is_dir:
            return "a directory, not a file"
        return f"{f.size_bytes} bytes ({f.size_mb:.1f} MB), digest {f.digest[:19]}"


class FunctionWeights(Resource):
    """A function's weights file(s) in its container."""

    parameter = "expected_function"

    def __init__(
        self,
        find: Any,
        prober: Any,
        fn: Function,
        entry: Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None,
        *,
        strict: bool,
    ) -> None:
        super().__init__(fn.container, find, prober, strict=strict)
        self.fn, self._entry = fn, entry

    @cached_property
    def entry(self) -> Mapping[str, Any] | None:
        """The dashboard's entry for the function, asked when a fact first needs it: a
        dashboard that does not answer then fails (or skips) the check that asks, after its
        depends_on, not the fixture that handed the resource out (CI: nuclio-dashboard-stopped)."""
        return self._entry() if callable(self._entry) else self._entry

    @cached_property
    def sources(self) -> tuple[WeightsSource, ...]:
        return weights_sources(self.fn, self.entry)

    @classmethod
    def probes(cls, param: Function, profile: Profile, facts: RunFacts) -> Iterator[Declared]:
        if facts.function_port(param.name) is None:
            return
        for where in weights_sources(param, facts.function_entry(param.name)):
            yield Declared(param.container, ("model_weights", where.path))

    def files(self) -> list[FoundWeights]:
        return [
            FoundWeights(where, self._probe("model_weights", where.path), self.fn.weights_min_mb)
            for where in self.sources
        ]

    def why_unknown(self) -> str:
        """Why nothing was verified: no source names a path (a skip's reason)."""
        dirs = directory_mounts(self.entry)
        seen = f"; it mounts {', '.join(dirs)}, which may hold them" if dirs else ""
        return (
            f"{self.fn.name}: no weights path known: the profile gives no `weights` and its "
            f"spec names none (no spec.env value, volume mount or build step with a "
            f'{"/".join(WEIGHT_SUFFIXES)} file){seen}; set weights = "/path/in/container" '
            "for it in the profile"
        )

    def why_implausible(self, found: FoundWeights) -> Diagnosis:
        f, path = found.file, found.where.path
        if f.ok and f.exists and not f.is_dir:
            what = f"its weights at {path} are {f.size_mb:.1f} MB, under {found.min_mb:g} MB"
            why = "a failed download leaves an HTML error page or a Git LFS pointer of a few bytes"
        else:
            what = f"no weights file at {path}"
            why = "the image was built without them, or a volume that should hold them is empty"
        return Diagnosis(
            self.fn.container,
            what,
            observed=found.observed(),
            why=f"{why}; the path comes from {found.where.source}",
            expected=f"a file of at least {found.min_mb:g} MB (the profile's weights_min_mb)",
            consequence=f"{self.fn.name} fails to load its model: init_context raises and "
            "every call fails, or it answers from an untrained model",
            fix=f"rebuild and redeploy {self.fn.name} so its weights are fetched (nuctl deploy "
            f"--project-name cvat --path {self.fn.path or 'serverless/<...>/nuclio'} "
            '--platform local), or mount them; if the path is wrong, set weights = "..." for '
            "it in the profile",
        )
