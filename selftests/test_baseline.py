"""Baselines from recorded inputs, without Docker: what a baseline holds (checks, timings, the
stack's fingerprint), what it leaves out (volatile fields, secrets' values), the key that keeps
secrets out of it, and `criobe-verify baseline DIR` writing one through the plugin."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from criobe_verify.baseline import FILE, FORMAT_VERSION, baseline_of, load_run, write_baseline
from criobe_verify.fingerprint import VALUE_SETTINGS
from criobe_verify.secret_digest import (
    KeyFileError,
    SecretDigest,
    load_or_create_key,
    refuse_inside,
    resolve_key_path,
)
from selftests import PROJECT_ROOT
from selftests.data import DATA
from selftests.recorded_stack import SECRETS, SMOKESCREEN_OPTS, RecordedStack

SUMMARY = json.loads((DATA / "recorded" / "twin-summary.json").read_text())
DIGEST = SecretDigest(b"selftest-key-" + b"0" * 32)


def _baseline(stack: RecordedStack | None = None, summary: dict | None = None) -> dict:
    fp = (stack or RecordedStack()).fingerprint(DIGEST)
    return baseline_of(summary or SUMMARY, fp, ["host", "containers"])


def test_a_baseline_holds_every_check_the_latency_and_the_e2e_stages():
    baseline = _baseline()
    assert baseline["format_version"] == FORMAT_VERSION
    assert set(baseline["checks"]) == set(SUMMARY["checks"])
    waived = baseline["checks"]["ports/internal-port-not-public[8070]"]
    assert waived["outcome"] == "waived" and waived["kind"] == "policy"
    assert waived["finding"] == "port 8070: is reachable on a public interface"
    lama = baseline["latency"]["pth-lama"]
    assert (lama["first_s"], lama["p50_s"], lama["p95_s"], lama["max_s"]) == (
        0.3335, 0.406, 0.7575, 0.7575,
    )  # fmt: skip
    assert len(baseline["latency"]) == 5
    three = baseline["e2e"]["three-stage"]
    assert [s["name"] for s in three["stages"]] == [
        "corners detected", "warped task created", "grid detected", "grid-free task created",
        "corals detected",
    ]  # fmt: skip
    assert three["wall_s"] == 6.686
    assert baseline["run"]["layers"] == ["host", "containers"]
    assert baseline["fields"]["compared"] and baseline["fields"]["volatile"]


def test_the_fingerprint_holds_each_containers_and_functions_configuration():
    fp = RecordedStack().fingerprint(DIGEST)
    server = fp["containers"]["cvat_server"]
    assert server["image"] == "cvat/server:v2.29.0" and server["restart"] == "always"
    assert server["image_id"].startswith("sha256:")
    # The short-id alias Docker adds changes at each recreation: it is not kept.
    assert server["networks"] == {"cvat_cvat": ["cvat-server", "cvat_server"]}
    assert server["extra_hosts"] == [
        "bridge.gateway:host-gateway", "host.docker.internal:host-gateway",
    ]  # fmt: skip
    assert server["env"]["values"] == {
        "SMOKESCREEN_OPTS": SMOKESCREEN_OPTS, "ALLOWED_HOSTS": "*", "CVAT_SERVERLESS": "1",
        "CVAT_NUCLIO_HOST": "nuclio",
    }  # fmt: skip
    assert "PATH" in server["env"]["names"] and "PATH" not in server["env"]["values"]
    assert list(server["env"]["secrets"]) == ["DJANGO_SECRET_KEY"]
    assert fp["containers"]["traefik"]["ports"] == {"8080/tcp": ["0.0.0.0:8080"]}
    # A function's host port is Nuclio's pick: compared as "published", not by number.
    corners = fp["containers"]["nuclio-nuclio-pth-yolo-gridcorners"]
    assert corners["ports"] == {"8080/tcp": ["0.0.0.0:*"]}
    assert corners["function"] == "pth-yolo-gridcorners"
    spec = fp["functions"]["pth-yolo-gridcorners"]
    assert (spec["eventTimeout"], spec["gpu"], spec["network"], spec["project"]) == (
        "30s", "1", "cvat_cvat", "cvat",
    )  # fmt: skip
    assert spec["replicas"] == {"minReplicas": 1, "maxReplicas": 1}
    assert spec["triggers"]["myHttpTrigger"]["maxWorkers"] == 1
    assert spec["labels"] == ["quadrat_corner"]
    assert spec["restart"] == "always"
    assert "httpPort" not in json.dumps(spec)
    assert fp["versions"] == {"cvat": "2.29.0", "nuclio": "1.13.0", "bridge_cvat_sdk": "2.29.0"}
    assert fp["secret_key_id"] == DIGEST.key_id


def test_secrets_are_kept_as_hmacs_and_a_credential_in_a_kept_setting_too():
    stack = RecordedStack()
    stack.set_env("bridge", "CVAT_URL", "http://admin:url-pw-5531@cvat-server:8080")
    env = stack.fingerprint(DIGEST)["containers"]["bridge"]["env"]
    assert env["secrets"]["CVAT_PWD"] == DIGEST.of(SECRETS["CVAT_PWD"])
    assert set(env["secrets"]) == {"CVAT_PWD", "WEBHOOK_SECRET", "CVAT_URL"}
    assert env["values"] == {"CVAT_USER": "admin", "AUTO_ANN_TIMEOUT": "900"}
    assert {"CVAT_URL", "CVAT_USER", "AUTO_ANN_TIMEOUT"} <= VALUE_SETTINGS
    # A kept setting holding another container's secret (the database password pasted as
    # the bridge's user by mistake) is kept as an HMAC too.
    stack.set_env("bridge", "CVAT_USER", SECRETS["POSTGRES_PASSWORD"])
    env = stack.fingerprint(DIGEST)["containers"]["bridge"]["env"]
    assert "CVAT_USER" in env["secrets"] and "CVAT_USER" not in env["values"]


def test_no_secret_value_is_in_any_file_of_the_baseline_folder(tmp_path: Path):
    """Two baselines, the second with every secret changed (and a credential in CVAT_URL):
    every file of each folder is read, and no secret value of either is in any of them."""
    after = RecordedStack()
    changed = {name: value + "-rotated" for name, value in SECRETS.items()}
    for name, var in (
        ("bridge", "CVAT_PWD"),
        ("bridge", "WEBHOOK_SECRET"),
        ("cvat_db", "POSTGRES_PASSWORD"),
        ("cvat_server", "DJANGO_SECRET_KEY"),
    ):
        after.set_env(name, var, changed[var])  # fmt: skip
    after.set_env("bridge", "CVAT_URL", "http://admin:url-pw-5531@cvat-server:8080")
    write_baseline(tmp_path / "before", _baseline())
    write_baseline(tmp_path / "after", _baseline(after))
    values = [*SECRETS.values(), *changed.values(), "url-pw-5531"]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2
    leaks = [(p.name, v) for p in files for v in values if v in p.read_text()]
    assert leaks == []


def test_a_baseline_written_reads_back_as_the_same_run(tmp_path: Path):
    written = write_baseline(tmp_path / "lab", _baseline())
    assert written == tmp_path / "lab" / FILE
    run = load_run(tmp_path / "lab")
    assert run.kind == "baseline" and set(run.checks) == set(SUMMARY["checks"])
    assert run.fingerprint["versions"]["cvat"] == "2.29.0"
    assert load_run(written).checks == run.checks  # the file itself reads the same


def test_the_key_is_made_0600_in_a_0700_folder_and_refused_when_others_read_it(tmp_path: Path):
    path = tmp_path / "config" / "criobe-verify" / "baseline.key"
    key = load_or_create_key(path)
    assert len(key) == 64 and load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"readable by others \(mode 644\).*chmod 600"):
        load_or_create_key(path)


def test_the_key_path_follows_the_option_then_the_environment_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CRIOBE_VERIFY_BASELINE_KEY", raising=False)
    assert resolve_key_path(None) == tmp_path / "xdg" / "criobe-verify" / "baseline.key"
    monkeypatch.setenv("CRIOBE_VERIFY_BASELINE_KEY", str(tmp_path / "env.key"))
    assert resolve_key_path(None) == tmp_path / "env.key"
    assert resolve_key_path(str(tmp_path / "opt.key")) == tmp_path / "opt.key"


def test_a_key_inside_the_baseline_folder_is_refused(tmp_path: Path):
    with pytest.raises(KeyFileError, match="inside the baseline folder"):
        refuse_inside(tmp_path / "lab" / "k.key", tmp_path / "lab")
    refuse_inside(tmp_path / "k.key", tmp_path / "lab")  # beside it is fine


def _cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "criobe_verify.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "baseline: needs a folder; expected criobe-verify baseline DIR"),
        (("lab", "--baseline-key", "lab/k.key"), "is inside the baseline folder"),
        (("old",), "holds a baseline already; expected a new folder; fix: another folder, or "
                   "--overwrite"),
    ],
)  # fmt: skip
def test_a_baseline_that_could_not_be_written_is_refused_before_the_run(tmp_path, args, says):
    write_baseline(tmp_path / "old", _baseline())
    proc = _cli(tmp_path, "baseline", *args, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert not (tmp_path / "reports").exists()  # nothing ran


def test_the_run_writes_its_baseline_and_names_what_it_could_not_read(tmp_path: Path):
    """`criobe-verify baseline DIR` (here with the host layer only, no Docker engine and no
    stack answering): the usual reports, and DIR/baseline.json with the run's outcomes and
    every part of the fingerprint it could not read named, not guessed."""
    profile = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()
    for port in ("8080", "8070", "8000"):
        profile = profile.replace(f'"http://localhost:{port}"', '"http://127.0.0.1:9"')
    (tmp_path / "lab.toml").write_text(profile)
    proc = _cli(
        tmp_path, "baseline", "before", "--reports", "out", "--profile", "lab.toml",
        "--layer", "host", "--baseline-key", str(tmp_path / "k.key"),
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )  # fmt: skip
    assert (tmp_path / "out" / "summary.json").is_file(), proc.stdout[-3000:]
    assert f"baseline written to {tmp_path / 'before' / FILE}" in proc.stdout, proc.stdout[-3000:]
    baseline = json.loads((tmp_path / "before" / FILE).read_text())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {k: v["outcome"] for k, v in baseline["checks"].items()} == {
        k: v["outcome"] for k, v in summary["checks"].items()
    }
    assert baseline["run"]["layers"] == ["host"]
    assert set(baseline["fingerprint"]["unavailable"]) == {"containers", "functions", "cvat"}
    assert baseline["fingerprint"]["functions"] is None
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


STATIC_LAYERS = (
    "host", "containers", "ports", "network", "gateway", "services", "functions", "reachability",
)  # fmt: skip


@pytest.fixture
def lab_data(tmp_path):
    """A lab's data in the twin's CVAT, as a lab makes it with cvat-sdk: a project with a
    label and a task of one image (its job), deleted at the end."""
    from cvat_sdk import make_client
    from cvat_sdk.core.proxies.tasks import ResourceType

    from selftests import test_cvat_conformance as conformance
    from selftests.cvat_replay import jpeg

    conformance.ensure_admin()
    image = tmp_path / "reef.jpg"
    image.write_bytes(jpeg(320, 240))
    with make_client(
        "http://localhost", port=8080, credentials=("admin", conformance.ADMIN_PASSWORD)
    ) as client:
        project = client.projects.create(
            {"name": "baseline lab data", "labels": [{"name": "Acropora", "type": "polygon"}]}
        )
        try:
            task = client.tasks.create_from_data(
                spec={"name": "reef 2024 quadrat 1", "project_id": project.id},
                resources=[image],
                resource_type=ResourceType.LOCAL,
            )
            yield task
        finally:
            project.remove()


@pytest.mark.twin
def test_on_the_twin_a_baseline_equals_itself_and_a_recreated_bridge_changes_nothing(
    tmp_path, lab_data
):
    """The static layers' baseline of the running twin: every part of the fingerprint read,
    the lab's data in the inventory; `compare DIR DIR` reports nothing; after `docker restart
    bridge` and a recreation of the bridge with the same configuration (a new container id),
    a second baseline compares with no flip, no drift and no data changed."""
    from selftests.twin import Twin

    layers = [f"--layer={layer}" for layer in STATIC_LAYERS]
    key = f"--baseline-key={tmp_path / 'k.key'}"

    def baseline(name: str) -> dict:
        profile = str(PROJECT_ROOT / "profiles" / "twin.toml")
        proc = _cli(tmp_path, "baseline", name, "--profile", profile, *layers,
                    "--reports", f"r-{name}", key, "-q")  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        return json.loads((tmp_path / name / FILE).read_text())

    before = baseline("before")
    fingerprint = before["fingerprint"]
    # The lab's inventory read whole from the twin's CVAT, its sampled jobs with their frames.
    assert before["inventory"]["unavailable"] == {}, before["inventory"]["unavailable"]
    (job,) = lab_data.get_jobs()
    sampled = before["inventory"]["sample"]["jobs"]
    assert sampled[str(job.id)]["frame_sha256"].startswith("sha256:"), sampled
    assert before["inventory"]["tasks"][str(lab_data.id)]["size"] == 1
    assert fingerprint["unavailable"] == {}, fingerprint["unavailable"]
    assert fingerprint["versions"]["cvat"] == "2.29.0" and fingerprint["versions"]["nuclio"]
    assert fingerprint["versions"]["bridge_cvat_sdk"]
    assert len(fingerprint["functions"]) >= 4
    assert {"cvat_server", "bridge", "nuclio-nuclio-pth-lama"} <= set(fingerprint["containers"])
    same = _cli(tmp_path, "compare", "before", "before")
    assert same.returncode == 0, same.stdout + same.stderr
    nothing = ["Checks that passed before and do not now: none", "New checks: none",
               "Checks gone: none", "Configuration drift: findings: none",
               "Configuration drift: information: none", "Data lost or changed: none"]  # fmt: skip
    assert [line for line in nothing if line not in same.stdout] == [], same.stdout

    twin = Twin(tmp_path)
    old = twin.container("bridge").id
    twin.container("bridge").restart(timeout=10)
    twin.recreate("bridge")
    assert twin.container("bridge").id != old
    twin.wait_for(lambda: _answers("http://localhost:8000/health"), 60, "the bridge's /health")
    baseline("after")
    proc = _cli(tmp_path, "compare", "before", "after")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line for line in nothing if line not in proc.stdout] == [], proc.stdout


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
