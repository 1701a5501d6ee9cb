"""Docker 29 refuses clients older than API 1.44, which breaks the Nuclio 1.13.0 dashboard
(docker CLI 23.0.1: API 1.42) and Traefik v2.10's docker provider (API 1.24). The engines of
this project's machines accept 1.12 and up, so the failing case is proven on Docker 29.0.0's
recorded /version answer (selftests/data/recorded/README.md)."""

from __future__ import annotations

import json

import pytest

from criobe_verify.diagnosis import CheckFailed, expect
from criobe_verify.paths import PROFILES_DIR
from criobe_verify.profile import load_profile
from criobe_verify.resources.host import Engine
from selftests import PROJECT_ROOT

DOCKER_29 = json.loads(
    (PROJECT_ROOT / "selftests/data/recorded/docker-29.0.0-version.json").read_text()
)


def test_docker_29_refuses_the_real_stacks_nuclio_and_traefik_clients():
    engine = Engine.of(DOCKER_29, load_profile(PROFILES_DIR / "criobe.toml"))
    with pytest.raises(CheckFailed) as failed:
        expect(not engine.clients_refused(), engine.why_clients_refused)
    text = str(failed.value)
    assert "29.0.0 refuses API versions below 1.44" in text
    assert "speaks API 1.42" in text and "nuclio/nuclio@1.13.0" in text
    assert "speaks API 1.24" in text and "traefik:v2.11.31" in text


def test_docker_28_accepts_them():
    docker_28 = {**DOCKER_29, "Version": "28.5.2", "ApiVersion": "1.51", "MinAPIVersion": "1.24"}
    engine = Engine.of(docker_28, load_profile(PROFILES_DIR / "criobe.toml"))
    assert engine.clients_refused() == []
