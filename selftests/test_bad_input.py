"""Bad input gets one clear line: a table of bad options, profiles, waivers, images, ground
truths, paths and environment variables, each run through the CLI in a subprocess from an
empty folder. For each: exit code 4 (usage), stderr one line naming the input in the form
`criobe-verify: <input>: <problem>; expected …; fix: …`, nothing on stdout, nothing created
in the working folder, and no secret shown. No Docker: DOCKER_HOST points nowhere, and every
case is stopped by validation before any check runs (the engine that does not answer is the
one case that runs checks, and it exits 1 with one diagnosis).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from selftests import PROJECT_ROOT
from selftests.fake_checkout import fake_checkout

NO_ENGINE = "unix:///run/criobe-verify-no-such-docker.sock"
TWIN = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
SAMPLE = PROJECT_ROOT / "fixtures" / "data" / "sample-quadrat"
PHOTO = SAMPLE / "1-raw_jpg" / "Synthetic_2024_07.jpg"
TRUTH = SAMPLE / "ground_truth.json"
SECRETS = ("Hunter2pw", "s3cretpw", "Coral-Reef-2024!")

Prepare = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Bad:
    id: str
    prepare: Prepare  # writes the case's files under the inputs folder, returns the CLI's args
    names: str  # what the line must name (the input, and the gist of the problem)
    env: dict[str, str] = field(default_factory=dict)
    expected: bool = True  # the line says what was expected (pytest's own errors may not)


def args(*given: str) -> Prepare:
    return lambda folder: list(given)


def profile(edit: Callable[[str], str], *more: str) -> Prepare:
    """The twin's profile, edited, as --profile."""

    def prepare(folder: Path) -> list[str]:
        path = folder / "lab.toml"
        path.write_text(edit(TWIN))
        return ["--profile", str(path), *more]

    return prepare


def waiver(check: str, extra: str = "") -> Prepare:
    return profile(lambda t: t + f'\n[[waivers]]\ncheck = "{check}"\nreason = "lab"\n{extra}')


def _folder(folder: Path, name: str) -> Path:
    (folder / name).mkdir()
    return folder / name


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _truncated_photo(folder: Path) -> list[str]:
    photo = _write(folder, "quadrat.jpg", PHOTO.read_bytes()[: PHOTO.stat().st_size // 2])
    return ["--sample-image", str(photo), "--ground-truth", str(TRUTH)]


def _second_photo(folder: Path, truth_names: str = "Q2.jpg") -> tuple[Path, Path]:
    """A second lab photo (the sample's, renamed) and a ground_truth.json naming
    `truth_names` as its photo."""
    photo = _write(folder, "Q2.jpg", PHOTO.read_bytes())
    doc = json.loads(TRUTH.read_text())
    doc["photo"]["file_name"] = truth_names
    return photo, _write(folder, "q2_truth.json", json.dumps(doc))


def _two_photos(truth_names: str, give_second_truth: bool = True) -> Prepare:
    def prepare(folder: Path) -> list[str]:
        photo, truth = _second_photo(folder, truth_names)
        more = ["--ground-truth", str(truth)] if give_second_truth else []
        return ["--sample-image", str(PHOTO), "--sample-image", str(photo),
                "--ground-truth", str(TRUTH), *more]  # fmt: skip

    return prepare


BAD: list[Bad] = [
    # --- options ---
    Bad("layer-typo-in-a-list", args("--layer", "host,contaners"), "--layer contaners: unknown layer; expected one of host, containers"),
    Bad("require-typo", args("--require", "e2f"), "--require e2f: unknown layer; expected one of host, containers"),
    Bad("stack-mode", args("--stack", "bogus"), "--stack bogus: unknown mode"),
    Bad("phase", args("--phase", "pre-install"), "--phase pre-install: unknown phase; expected one of preinstall, installed; fix: did you mean preinstall?"),
    Bad("budgets", args("--budgets", "tpu"), "--budgets tpu: unknown budget"),
    Bad("stack-timeout-text", args("--stack-timeout", "abc"), "--stack-timeout abc: not a number of seconds"),
    Bad("gateway-ip", args("--gateway-ip", "999.1.1.1"), "--gateway-ip 999.1.1.1: not an IPv4 address"),
    Bad("unknown-option", args("--stak", "twin"), "--stak: unrecognized option; expected one of criobe-verify's options (criobe-verify --help); fix: did you mean --stack?"),
    Bad("xdist-workers", args("-n", "abc"), "-n/--numprocesses: invalid", expected=False),
    Bad("keep-up-with-attach", args("--keep-up"), "--keep-up: means nothing with --stack attach"),
    # --- paths ---
    Bad("stack-up-without-dir", args("--stack", "up"), "--stack up: needs --stack-dir PATH"),
    Bad("stack-dir-without-up", args("--stack-dir", "/srv/cvat"), "--stack-dir /srv/cvat: is read only with --stack up"),
    Bad("stack-dir-missing", args("--stack", "up", "--stack-dir", "/nonexistent/cvat"), "--stack-dir /nonexistent/cvat: no such directory"),
    Bad("stack-dir-a-file", lambda d: ["--stack", "up", "--stack-dir", str(_write(d, "cvat", "x"))], "/cvat: not a directory"),
    Bad("stack-dir-empty", lambda d: ["--stack", "up", "--stack-dir", str(_folder(d, "empty"))], "/empty: an empty directory, not a CRIOBE checkout"),
    Bad("stack-dir-not-criobe", lambda d: ["--stack", "up", "--stack-dir", str(_write(d, "docker-compose.yml", "services: {}\n").parent)], "not a CRIOBE checkout: missing bridge/docker-compose.bridge.yml, components/serverless/docker-compose.serverless.yml"),
    Bad("stack-dir-without-credentials", lambda d: ["--stack", "up", "--stack-dir", str(fake_checkout(d / "cvat", "CVAT_URL=http://cvat-server:8080\n"))], "bridge/.env: no CVAT credentials"),
    Bad("reports-a-file", lambda d: [f"--reports={_write(d, 'notes.txt', 'x')}"], "notes.txt: a file, not a folder"),
    Bad("reports-under-a-file", lambda d: ["--reports", str(_write(d, "notes.txt", "x") / "reports")], "notes.txt is a file, not a folder"),
    Bad("reports-unwritable", args("--reports", "/proc/criobe-reports"), "--reports /proc/criobe-reports: cannot write in /proc"),
    Bad("summary-json-a-folder", lambda d: ["--", f"--summary-json={_folder(d, 'out')}"], "/out: a directory; expected a file path"),
    # --- profiles ---
    Bad("profile-missing", args("--profile", "/nonexistent/lab.toml"), "/nonexistent/lab.toml: no such profile file"),
    Bad("profile-a-folder", lambda d: ["--profile", str(d)], ": a directory, not a profile file"),
    Bad("profile-malformed-toml", profile(lambda t: t.replace("[stack]\n", "[stack\n")), "lab.toml: not valid TOML"),
    Bad("profile-wrong-type", profile(lambda t: t.replace("disk_free_gb_min = 5", 'disk_free_gb_min = "lots"')), "lab.toml: host.disk_free_gb_min: got 'lots'; expected a number of GB"),
    Bad("profile-unknown-key", profile(lambda t: t.replace("[host]", "[host]\ndisk_free = 3")), "host.disk_free: unknown key; expected one of disk_free_gb_min"),
    Bad("profile-unknown-table", profile(lambda t: t.replace("[profile]", "[profil]")), "lab.toml: profil: unknown key; expected one of $schema, profile"),
    Bad("profile-bad-enum", profile(lambda t: t.replace('restart = "always"', 'restart = "allways"', 1)), "containers[0].restart: got 'allways'; expected one of always, no, on-failure, unless-stopped; fix: did you mean always?"),
    Bad("profile-negative-seconds", profile(lambda t: t.replace("stage_timeout_s = 20", "stage_timeout_s = -1")), "e2e.stage_timeout_s: got -1; expected seconds (a positive number)"),
    Bad("profile-iou-above-one", profile(lambda t: t.replace('coral_output = "mask"', 'coral_output = "mask"\ncoral_iou_min = 1.5')), "inference.coral_iou_min: got 1.5; expected an IoU between 0 and 1"),
    Bad("profile-bad-version", profile(lambda t: t.replace('cvat_version = "2.29.0"', 'cvat_version = "latest"')), "stack.cvat_version: got 'latest'; expected a version such as '20.10'"),
    Bad("profile-port-out-of-range", profile(lambda t: t.replace("port = 8080", "port = 80800")), "ports[1].port: got 80800; expected a TCP port number (1-65535)"),
    Bad("profile-unknown-container", profile(lambda t: t.replace('container = "traefik"', 'container = "trafik"', 1)), "ports[0].container: got 'trafik'; expected the name of a container in [[containers]]; fix: did you mean traefik?"),
    # A password inside a URL is shown redacted (and refused: the suite reads credentials from the bridge's environment).
    Bad("profile-password-in-url", profile(lambda t: t.replace('cvat_url = "http://localhost:8080"', 'cvat_url = "http://admin:Hunter2pw@localhost:8080"')), "stack.cvat_url: got 'http://admin:[REDACTED]@localhost:8080'"),
    # --- waivers ---
    Bad("waiver-unknown-check", waiver("ports/internal-port-not-publik[8070]"), "waivers[1].check 'ports/internal-port-not-publik[8070]': names no check of the suite; expected a check's stable id, a pattern of ids (*, ?) or a node id, with a parameter this profile gives (a container, function or port of it); fix: the nearest ids: ports/internal-port-not-public"),
    Bad("waiver-unknown-parameter", waiver("ports/internal-port-not-public[8071]"), "waivers[1].check 'ports/internal-port-not-public[8071]': names no check of the suite"),
    Bad("waiver-old-node-id-typo", waiver("tests/test_ports.py::test_internal_port_is_not_published[8070]"), "names no check of the suite; expected a check's stable id, a pattern of ids (*, ?) or a node id, with a parameter this profile gives (a container, function or port of it); fix: the nearest ids: tests/test_ports.py::test_internal_port_is_not_published_on_public_interface"),
    Bad("waiver-functional-check", waiver("containers/exists[cvat_ui]"), "names only functional checks (containers/exists)"),
    Bad("waiver-empty-reason", profile(lambda t: t.replace('reason = "the twin runs', 'reason = " "\nnote = "the twin runs')), "waivers[0].reason: got ' '; expected why the finding is accepted (not empty)"),
    Bad("waiver-bad-date", waiver("ports/internal-port-not-public[8090]", 'expires = "someday"'), "waivers[1].expires: got 'someday'; expected a date such as 2027-06-30"),
    # --- the sample and its ground truth ---
    Bad("sample-without-ground-truth", args("--sample-image", str(PHOTO)), "Synthetic_2024_07.jpg: needs --ground-truth"),
    Bad("ground-truth-without-sample", args("--ground-truth", str(TRUTH)), "ground_truth.json: given without --sample-image"),
    Bad("sample-truncated", _truncated_photo, "quadrat.jpg: not a readable image (image file is truncated"),
    Bad("sample-not-an-image", lambda d: ["--sample-image", str(_write(d, "q.jpg", "GIF? no, a note")), "--ground-truth", str(TRUTH)], "q.jpg: not an image"),
    Bad("ground-truth-malformed-json", lambda d: ["--sample-image", str(PHOTO), "--ground-truth", str(_write(d, "corners.json", '{"images":\n'))], "corners.json: not valid JSON (line 2 column 1)"),
    Bad("ground-truth-not-coco", lambda d: ["--sample-image", str(PHOTO), "--ground-truth", str(_write(d, "corners.json", '{"images": []}'))], "corners.json: not a COCO export of that quadrat: no ground truth found"),
    Bad("ground-truth-names-no-photo", _two_photos("Elsewhere.jpg"), "q2_truth.json: names none of the --sample-image photos (it describes Elsewhere)"),
    Bad("photo-without-ground-truth", _two_photos("Q2.jpg", give_second_truth=False), "Q2.jpg: no --ground-truth names this photo (by file_name)"),
    Bad("update-golden-with-a-labs-profile", args("--update-golden"), "--update-golden: records the twin's golden answers, and this run's profile is 'criobe'"),
    # --- environment ---
    Bad("docker-host-scheme", args(), "DOCKER_HOST=ftp://engine: not an address docker can connect to", env={"DOCKER_HOST": "ftp://engine"}),
    Bad("docker-host-password", args(), "DOCKER_HOST=tcp://admin:[REDACTED]@127.0.0.1:1: carries a user name", env={"DOCKER_HOST": "tcp://admin:s3cretpw@127.0.0.1:1"}),
    Bad("docker-tls-files", args(), "DOCKER_CERT_PATH=/nonexistent/certs: DOCKER_TLS_VERIFY is set, but ca.pem, cert.pem, key.pem missing there", env={"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent/certs"}),
    Bad("stack-host-no-scheme", args(), "CRIOBE_STACK_HOST=gpu-host: no backend (scheme://)", env={"CRIOBE_STACK_HOST": "gpu-host"}),
    Bad("stack-host-unknown-backend", args(), "CRIOBE_STACK_HOST=shh://gpu-host: unknown backend 'shh'", env={"CRIOBE_STACK_HOST": "shh://gpu-host"}),
    Bad("twin-base-image", args("--stack", "twin"), "BASE_IMAGE=Debian Bookworm: not an image reference", env={"BASE_IMAGE": "Debian Bookworm"}),
    Bad("twin-extra-ca-a-path", args("--stack", "twin"), "EXTRA_CA_CERT: holds no PEM certificate", env={"EXTRA_CA_CERT": "/usr/local/share/ca-certificates/lab.crt"}),
]  # fmt: skip


def run_cli(cli_args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CRIOBE_"))}
    base.pop("BASE_IMAGE", None)
    base.pop("EXTRA_CA_CERT", None)
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *cli_args],
        cwd=cwd,
        env={**base, "DOCKER_HOST": NO_ENGINE, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_table_is_wide():
    assert len(BAD) >= 40 and len({b.id for b in BAD}) == len(BAD)


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_input_gets_one_clear_line_and_changes_nothing(bad: Bad, tmp_path: Path):
    inputs, work = tmp_path / "inputs", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    proc = run_cli(bad.prepare(inputs), work, bad.env)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 4, (proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])
    assert len(lines) == 1 and lines[0].startswith("criobe-verify: "), proc.stderr
    assert bad.names in lines[0], lines[0]
    assert "; fix: " in lines[0] and ("; expected " in lines[0] or not bad.expected), lines[0]
    assert proc.stdout == "", proc.stdout[-1500:]
    assert list(work.iterdir()) == [], "the run created files in the working folder"
    assert not any(s in proc.stdout + proc.stderr for s in SECRETS), lines[0]


def test_an_engine_that_does_not_answer_is_one_diagnosis_naming_the_endpoint(tmp_path: Path):
    """Input that is valid, an engine that is nowhere: the run goes on, and the host layer's
    engine check fails once, naming DOCKER_HOST's value and the fix; the other checks that
    need the engine skip naming it; no exception chain anywhere. Exit 1 (broken), not 4."""
    for extra in ([], ["--", "-n", "2"]):
        proc = run_cli(["--phase", "preinstall", *extra], tmp_path, {})
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out[-3000:]
        summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
        engine = summary["checks"]["host/docker-engine-answers"]
        assert engine["outcome"] == "failed"
        (diagnosis,) = engine["diagnoses"]
        assert diagnosis["what"] == f"not reachable at {NO_ENGINE} (DOCKER_HOST)"
        assert (
            diagnosis["observed"] == "no socket there"
            and "systemctl start docker" in (diagnosis["fix"])
        )
        assert summary["verdict"]["headline"].endswith(f"Fix: {diagnosis['fix']}")
        others = {k: e for k, e in summary["checks"].items() if k != "host/docker-engine-answers"}
        failed = [k for k, e in others.items() if e["outcome"] in ("failed", "error")]
        assert not failed, failed
        skipped = [e["message"] for e in others.values() if e["outcome"] == "skipped"]
        assert skipped and all(
            m.startswith("depends on host/docker-engine-answers, which failed: Docker engine")
            for m in skipped
        ), skipped
        # Said once by the suite. pytest's own short summary lists the failed check as well,
        # its message whole where CI is set (cut to the terminal's width elsewhere): not counted.
        ours = "\n".join(line for line in out.splitlines() if not line.startswith("FAILED "))
        assert (
            ours.count(f"Docker engine: not reachable at {NO_ENGINE} (DOCKER_HOST): no socket") == 1
        ), out[-3000:]
        for chain in ("Traceback", "The above exception", "During handling", "INTERNALERROR"):
            assert chain not in out, out[-3000:]


# The same checks in-process: cheap variations of the cases above (no subprocess each).
IN_PROCESS = [
    ({"--layer": ["nosuchlayer"]}, {}, "--layer nosuchlayer: unknown layer"),
    ({"--require": ["host,pipeline"]}, {}, "--require pipeline: unknown layer; expected one of host"),
    ({"--stack-timeout": "-5"}, {}, "--stack-timeout -5: not a positive number of seconds"),
    ({"--reuse-running": True}, {}, "--reuse-running: means nothing with --stack attach"),
    ({"--sample-image": "/nonexistent/q.jpg", "--ground-truth": [str(TRUTH)]}, {}, "--sample-image /nonexistent/q.jpg: no such file"),
    ({"--sample-image": str(PHOTO), "--ground-truth": ["/nonexistent/gt.json"]}, {}, "--ground-truth /nonexistent/gt.json: no such file"),
    ({}, {"DOCKER_HOST": "/var/run/docker.sock"}, "DOCKER_HOST=/var/run/docker.sock: not an address docker can connect to"),
    ({}, {"DOCKER_HOST": "tcp://engine:abc"}, "DOCKER_HOST=tcp://engine:abc: Port could not be cast"),
    ({}, {"CRIOBE_STACK_HOST": "ssh://"}, "CRIOBE_STACK_HOST=ssh://: no host after the backend"),
    ({}, {"CRIOBE_STACK_HOST": "ssh://ops:Hunter2pw@gpu-host", "DOCKER_HOST": "tcp://x:1:2"}, "DOCKER_HOST=tcp://x:1:2"),
]  # fmt: skip


def test_several_photos_are_each_paired_with_the_ground_truth_naming_them(tmp_path: Path):
    from criobe_verify.inputs import validate

    photo, truth = _second_photo(tmp_path)
    options = {
        "--sample-image": [str(photo), str(PHOTO)],
        "--ground-truth": [str(TRUTH), str(truth)],
    }
    samples = validate(options.get, {}).samples
    assert [(Path(image).name, t.photo_file) for image, t in samples] == [
        ("Q2.jpg", "Q2.jpg"), ("Synthetic_2024_07.jpg", "1-raw_jpg/Synthetic_2024_07.jpg"),
    ]  # fmt: skip
    # One photo: paired as before (a COCO export of one image, whatever it names).
    (single,) = validate(
        {"--sample-image": [str(photo)], "--ground-truth": [str(TRUTH)]}.get, {}
    ).samples
    assert single[0] == str(photo)


@pytest.mark.parametrize(("options", "environ", "names"), IN_PROCESS)
def test_more_bad_inputs_in_one_line(options, environ, names):
    from criobe_verify.bad_input import InputError
    from criobe_verify.inputs import validate

    with pytest.raises(InputError) as err:
        validate(options.get, environ)
    line = err.value.line
    assert names in line and "\n" not in line and "; fix: " in line, line


def test_a_lab_pytest_run_stops_on_the_same_line(tmp_path: Path):
    """pytest --pyargs criobe_verify.tests: the same validation, in pytest's usage-error form
    ('ERROR: ' and the one line; exit 4), before pytest-html makes the report's folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs",
         "criobe_verify.tests", "--layer", "nosuchlayer", "--html=reports/report.html"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DOCKER_HOST": NO_ENGINE},
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 4, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert lines == [lines[0]] and lines[0].startswith(
        "ERROR: criobe-verify: --layer nosuchlayer: unknown layer; expected one of host,"
    ), proc.stderr
    assert list(tmp_path.iterdir()) == [], "the run created files in the working folder"
