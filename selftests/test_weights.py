"""Model weights without Docker: where a function's spec says its weights are (spec.env,
spec.volumes, build commands and directives, the profile's override), the `model_weights`
probe run the way a container runs it (python3 -c PROGRAM), its answer read into a
WeightsFile, the check's diagnosis text, the twin's function.yaml files naming a path for
every function, and the fingerprint keeping the digest so `compare` shows a changed model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from criobe_verify.drift import drift, judge
from criobe_verify.fingerprint import function_entry
from criobe_verify.probe_answers import WeightsFile, parse_answer
from criobe_verify.probes import PROGRAM
from criobe_verify.profile import RISKY_DRIFT, Function, load_profile
from criobe_verify.resources.weights import (
    FoundWeights,
    FunctionWeights,
    WeightsSource,
    weights_sources,
)

ROOT = Path(__file__).resolve().parents[1]
FN = Function(name="pth-yolo-coralsegv4", role="corals", path="serverless/pytorch/yolo/c/nuclio")


def _paths(spec: dict, fn: Function = FN) -> list[tuple[str, str]]:
    return [(s.path, s.source) for s in weights_sources(fn, {"spec": spec})]


def test_env_value_that_is_a_weights_file_names_it() -> None:
    spec = {
        "env": [
            {"name": "CONF_THRESHOLD", "value": "0.25"},
            {"name": "WEIGHTS", "value": "/opt/nuclio/models/../w/best.onnx"},
            {"name": "RELATIVE", "value": "best.pt"},  # not a path inside the container
        ]
    }
    assert _paths(spec) == [("/opt/nuclio/w/best.onnx", "spec.env WEIGHTS")]


def test_volume_mount_of_a_weights_file_names_it_and_a_directory_does_not() -> None:
    spec = {
        "volumes": [
            {
                "volume": {"name": "ckpt", "hostPath": {"path": "/srv/lama/big-lama.ckpt"}},
                "volumeMount": {"name": "ckpt", "mountPath": "/models/lama"},
            },
            {
                "volume": {"name": "cache", "hostPath": {"path": "/srv/cache"}},
                "volumeMount": {"name": "cache", "mountPath": "/root/.cache"},
            },
        ]
    }
    assert _paths(spec) == [("/models/lama", "spec.volumes ckpt")]


def test_build_commands_and_directives_with_workdir() -> None:
    spec = {
        "build": {
            "commands": [
                "pip install ultralytics && wget -q -O /opt/nuclio/best.pt https://x/b.pt",
                "curl -sL https://x/readme.txt",  # to stdout, and not weights
            ],
            "directives": {
                "preCopy": [
                    {"kind": "WORKDIR", "value": "/opt/nuclio/sam"},
                    {"kind": "RUN", "value": "curl -O https://dl/sam_vit_h_4b8939.pth"},
                    {"kind": "COPY", "value": "weights/big-lama.safetensors models/"},
                ],
                "postCopy": [{"kind": "RUN", "value": "cp /opt/nuclio/best.pt /srv/m.pt"}],
            },
        }
    }
    got = _paths(spec)
    assert got[0] == ("/opt/nuclio/sam/sam_vit_h_4b8939.pth", got[0][1])
    assert got[0][1].startswith("spec.build.directives RUN `curl -O")
    assert [p for p, _ in got[1:]] == [
        "/opt/nuclio/sam/models/big-lama.safetensors",
        "/opt/nuclio/best.pt",
        "/srv/m.pt",
    ]
    assert got[2][1].startswith("spec.build.commands RUN `pip install ultralytics && wget")


def test_same_path_from_two_sources_keeps_the_first() -> None:
    spec = {
        "env": [{"name": "MODEL_PATH", "value": "/opt/nuclio/best.pt"}],
        "build": {"commands": ["wget -P /opt/nuclio https://x/best.pt"]},
    }
    assert _paths(spec) == [("/opt/nuclio/best.pt", "spec.env MODEL_PATH")]


def test_profile_path_overrides_the_spec() -> None:
    fn = Function(name="pth-lama", role="inpaint", weights="/w/lama.pt")
    spec = {"env": [{"name": "MODEL_PATH", "value": "/opt/nuclio/best.pt"}]}
    assert _paths(spec, fn) == [("/w/lama.pt", "profile")]


def test_nothing_named_gives_nothing() -> None:
    assert weights_sources(FN, None) == ()
    assert _paths({"env": [{"name": "LOG_LEVEL", "value": "info"}]}) == []


def _probe(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, "model_weights", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_probe_stats_and_samples_the_file(tmp_path: Path) -> None:
    small = tmp_path / "small.pt"
    small.write_bytes(b"x" * 3000)
    big = tmp_path / "big.pt"
    big.write_bytes(b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"c" * (1024 * 1024))
    answer = parse_answer("model_weights", _probe(str(small)), "exec")
    assert (answer.exists, answer.size_bytes) == (True, 3000)
    sampled = parse_answer("model_weights", _probe(str(big), "1"), "exec")
    # the middle MiB is not read: changing it keeps the digest, changing the tail does not
    big.write_bytes(b"a" * (1024 * 1024) + b"Z" * (1024 * 1024) + b"c" * (1024 * 1024))
    assert parse_answer("model_weights", _probe(str(big), "1"), "exec").digest == sampled.digest
    big.write_bytes(b"a" * (1024 * 1024) + b"b" * (1024 * 1024) + b"C" * (1024 * 1024))
    assert parse_answer("model_weights", _probe(str(big), "1"), "exec").digest != sampled.digest


def test_probe_answers_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    gone = parse_answer("model_weights", _probe(str(tmp_path / "none.pt")), "exec")
    assert (gone.ok, gone.exists) == (True, False)
    assert "No such file" in gone.why
    folder = parse_answer("model_weights", _probe(str(tmp_path)), "exec")
    assert (folder.exists, folder.is_dir) == (True, True)


def test_failed_probe_reads_as_a_failure() -> None:
    answer = parse_answer("model_weights", {"ok": False, "error": "timed out after 60 s"}, "exec")
    assert not answer.ok and answer.error == "timed out after 60 s"


def _weights(spec: dict, fn: Function = FN) -> FunctionWeights:
    return FunctionWeights(lambda: None, None, fn, {"spec": spec}, strict=False)


def test_diagnosis_of_a_missing_file_names_container_path_source_and_fix() -> None:
    w = _weights({"env": [{"name": "MODEL_PATH", "value": "/opt/nuclio/best.pt"}]})
    gone = WeightsFile(exists=False, why="FileNotFoundError: No such file or directory")
    found = FoundWeights(w.sources[0], gone, 1.0)
    assert not found.plausible
    text = str(w.why_implausible(found))
    for token in (
        "nuclio-nuclio-pth-yolo-coralsegv4",
        "no weights file at /opt/nuclio/best.pt",
        "spec.env MODEL_PATH",
        "No such file or directory",
        "at least 1 MB",
        "nuctl deploy",
    ):
        assert token in text, token


def test_diagnosis_of_a_small_file_says_its_size_against_the_minimum() -> None:
    fn = Function(name="pth-lama", role="inpaint", weights="/w/big-lama.pt", weights_min_mb=100)
    w = _weights({}, fn)
    lfs = WeightsFile(exists=True, size_bytes=132, sha256="ab" * 32)
    found = FoundWeights(w.sources[0], lfs, fn.weights_min_mb)
    assert not found.plausible
    text = str(w.why_implausible(found))
    assert "are 0.0 MB, under 100 MB" in text and "from profile" in text and "132 bytes" in text
    ok = FoundWeights(w.sources[0], WeightsFile(exists=True, size_bytes=200_000_000), 100)
    assert ok.plausible


def test_skip_reason_names_what_was_looked_for() -> None:
    why = _weights({"volumes": [{"volumeMount": {"name": "m", "mountPath": "/models"}}]})
    text = why.why_unknown()
    assert "no weights path known" in text and "/models" in text and "weights =" in text


def test_twin_names_a_weights_path_for_every_function() -> None:
    """The twin's functions must all be verified: each function.yaml names a path, and the
    image holds a stand-in there (twin-weights, made by Dockerfile.function)."""
    profile = load_profile(ROOT / "profiles" / "twin.toml")
    for fn in profile.functions:
        folder = ROOT / "twin" / fn.path
        sources = weights_sources(fn, yaml.safe_load((folder / "function.yaml").read_text()))
        assert sources, fn.name
        made = {
            line.split()[0]: float(line.split()[1]) * 1.048576
            for line in (folder / "twin-weights").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
        for where in sources:
            assert made.get(where.path, 0) >= fn.weights_min_mb, (fn.name, where)


def test_changed_weights_are_risky_drift() -> None:
    before = function_entry({"spec": {}}, {"/w/b.pt": {"bytes": 5, "digest": "sha256:" + "a" * 64}})
    after = function_entry({"spec": {}}, {"/w/b.pt": {"bytes": 5, "digest": "sha256:" + "b" * 64}})
    found = judge(drift({"functions": {"f": before}}, {"functions": {"f": after}}), RISKY_DRIFT)
    assert [(d.key, d.risky) for d in found] == [("function/f/weights", True)]
    assert "sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb" in found[0].line


def test_weights_source_is_frozen() -> None:
    with pytest.raises(AttributeError):
        WeightsSource("/a.pt", "profile").path = "/b.pt"  # type: ignore[misc]
