"""Profiles load, and a malformed one is refused in one line naming file, key and expectation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from criobe_verify.profile import ProfileError, load_profile
from selftests import PROJECT_ROOT

TWIN = (PROJECT_ROOT / "profiles" / "twin.toml").read_text()


@pytest.mark.parametrize("name", ["criobe.toml", "twin.toml"])
def test_shipped_profiles_load(name):
    profile = load_profile(PROJECT_ROOT / "profiles" / name)
    assert profile.container("cvat_server").aliases == ("cvat-server",)
    assert {p.port for p in profile.ports} >= {8080, 8070, 8000}
    assert 5432 in profile.internal_ports and 6379 in profile.internal_ports


def test_real_profile_expects_every_cvat_container_and_the_functions():
    profile = load_profile(PROJECT_ROOT / "profiles" / "criobe.toml")
    names = {c.name for c in profile.containers}
    assert {"cvat_clickhouse", "cvat_vector", "cvat_grafana", "cvat_opa", "cvat_utils"} <= names
    assert profile.disk_free_gb_min == 40
    assert [f.name for f in profile.functions if f.optional] == ["pth-facebookresearch-sam-vit-h"]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda t: t.replace('cvat_version = "2.29.0"', 'cvat_version = "latest"'),
            "stack.cvat_version: got 'latest'; expected a version such as '20.10'",
        ),
        (
            lambda t: t.replace("disk_free_gb_min = 5", 'disk_free_gb_min = "lots"'),
            "host.disk_free_gb_min: got 'lots'; expected a number of GB",
        ),
        (
            lambda t: t.replace('restart = "always"', 'restart = "allways"', 1),
            "containers[0].restart: got 'allways'; expected one of always, no, on-failure, "
            "unless-stopped; fix: did you mean always?",
        ),
        (
            lambda t: t.replace("port = 8080", "port = 80800"),
            "got 80800; expected a TCP port number (1-65535)",
        ),
        (
            lambda t: t.replace('container = "traefik"', 'container = "trafik"', 1),
            "got 'trafik'; expected the name of a container in [[containers]]; fix: did you mean traefik?",
        ),
        (lambda t: t.replace("[host]", "[host]\ndisk_free = 3"), "host.disk_free: unknown key"),
        (lambda t: t.replace("[stack]\n", "[stack\n"), "not valid TOML"),
        (lambda t: t.replace('network = "cvat_cvat"\n', ""), None),  # has a default
        (
            lambda t: t.replace('cvat_url = "http://localhost:8080"\n', ""),
            "stack.cvat_url: missing; expected a URL such as 'http://localhost:8080'",
        ),
        (
            lambda t: t.replace('gateway_ip = "auto"', 'gateway_ip = "bridge.gateway"'),
            "stack.gateway_ip: got 'bridge.gateway'; expected an IPv4 address or 'auto'",
        ),
    ],
)
def test_malformed_profile_is_refused_in_one_line(tmp_path, edit, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(edit(TWIN))
    if fragment is None:
        load_profile(path)
        return
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert message.startswith(str(path)) and fragment in message, message
    assert "\n" not in message


def test_suite_stops_on_malformed_profile_before_any_check(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TWIN.replace('restart = "always"', "restart = 1", 1))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--profile={path}", "tests"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"{path}: containers[0].restart: got 1; expected one of always" in proc.stderr
    assert "passed" not in proc.stdout and "failed" not in proc.stdout


def test_missing_profile_file_is_named(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.toml")


def test_the_shipped_json_schema_is_the_models():
    """criobe_verify/data/profile.schema.json is what editors read: regenerate it with
    `python -m criobe_verify.profile_schema` whenever the model changes."""
    from criobe_verify.profile_schema import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE.read_text() == schema_text(), (
        "profile.schema.json is stale: run python -m criobe_verify.profile_schema"
    )


def test_the_schema_says_what_the_loader_enforces():
    """Each refusal the loader makes for a value is a constraint an editor shows too."""
    from criobe_verify.profile_schema import profile_schema

    defs = profile_schema()["$defs"]
    assert defs["ProfileFile"]["additionalProperties"] is False
    assert defs["Port"]["properties"]["port"] == {
        "description": "a TCP port number (1-65535)",
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
    }
    assert defs["Container"]["properties"]["restart"]["enum"] == [
        "always", "no", "on-failure", "unless-stopped"
    ]  # fmt: skip
    assert "$schema" in defs["ProfileFile"]["properties"]  # the key taplo reads


def test_a_profile_may_name_its_schema_for_editors(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text('"$schema" = "file:///opt/criobe/profile.schema.json"\n' + TWIN)
    assert load_profile(path).name == "twin"


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace("calls = 10", "calls = 0"), "latency.calls: got 0; expected a number of calls (≥ 1)"),
        (lambda t: t.replace("stage_timeout_s = 20", "stage_timeout_s = -1"), "e2e.stage_timeout_s: got -1; expected seconds"),
        (lambda t: t.replace('workflows = ["two-stage", "three-stage"]', 'workflows = ["two-stage", "four-stage"]'), "e2e.workflows[1]: got 'four-stage'"),
        (lambda t: t.replace('cvat_url = "http://localhost:8080"', 'cvat_url = "http://admin:Hunter2pw@localhost:8080"'), "stack.cvat_url: got 'http://admin:[REDACTED]@localhost:8080'"),
        (lambda t: t.replace('name = "pth-lama"', 'name = "pth-yolo-gridpose"'), "functions[2].name: 'pth-yolo-gridpose' twice"),
        (lambda t: t.replace('from = "cvat_opa"', 'from = "cvat-opa"'), "dns[3].from: got 'cvat-opa'"),
        (lambda t: t.replace('warped_name = "{name}_warped"', 'warped_name = "warped"'), "e2e.warped_name: got 'warped'; expected a task name template with {name}"),
        (lambda t: t.replace("[profile]", "[profil]"), ": profil: unknown key"),
        (lambda t: t.replace('reason = "the twin runs', 'reason = "  "\nthe_reason = "x'), "waivers[0].reason: got '  '"),
    ],
)  # fmt: skip
def test_more_malformed_profiles(tmp_path, edit, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(edit(TWIN))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
    assert "Hunter2pw" not in message
