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
            "stack.cvat_version: expected a version such as '20.10'; got 'latest'",
        ),
        (
            lambda t: t.replace("disk_free_gb_min = 5", 'disk_free_gb_min = "lots"'),
            "host.disk_free_gb_min: expected a number of GB; got 'lots'",
        ),
        (
            lambda t: t.replace('restart = "always"', 'restart = "allways"', 1),
            "containers[0].restart: expected one of always, unless-stopped, on-failure, no; got 'allways'",
        ),
        (
            lambda t: t.replace("port = 8080", "port = 80800"),
            "expected a TCP port number (1-65535); got 80800",
        ),
        (
            lambda t: t.replace('container = "traefik"', 'container = "trafik"', 1),
            "expected the name of a container in [[containers]]; got 'trafik'",
        ),
        (lambda t: t.replace("[host]", "[host]\ndisk_free = 3"), "host.disk_free: unknown key"),
        (lambda t: t.replace("[stack]\n", "[stack\n"), "not valid TOML"),
        (lambda t: t.replace('network = "cvat_cvat"\n', ""), None),  # has a default
        (
            lambda t: t.replace('cvat_url = "http://localhost:8080"\n', ""),
            "stack.cvat_url: expected a URL such as 'http://localhost:8080'; missing",
        ),
        (
            lambda t: t.replace('gateway_ip = "auto"', 'gateway_ip = "bridge.gateway"'),
            "stack.gateway_ip: expected an IPv4 address or 'auto'; got 'bridge.gateway'",
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
    assert f"{path}: containers[0].restart: expected one of always" in proc.stderr
    assert "passed" not in proc.stdout and "failed" not in proc.stdout


def test_missing_profile_file_is_named(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.toml")
