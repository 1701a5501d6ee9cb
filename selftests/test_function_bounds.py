"""The facts and messages of a function's bounds and restarts, without a stack: the port the
dashboard says against the one its container publishes, its restart policy, its eventTimeout
and the bridge's AUTO_ANN_TIMEOUT against what the latency layer measured."""

from __future__ import annotations

from types import SimpleNamespace

from criobe_verify.profile import load_profile
from criobe_verify.resources.latency import LatencyStats, TimeoutFit
from criobe_verify.resources.nuclio import DeployedFunction, NuclioSide
from selftests.twin import TWIN_PROFILE


def _function(spec: dict, http_port: int, published: str, restart: str | None) -> DeployedFunction:
    profile = load_profile(TWIN_PROFILE)
    fn = next(f for f in profile.functions if f.name == "pth-lama")
    entry = {"spec": spec, "status": {"state": "ready", "httpPort": http_port}}
    container = SimpleNamespace(
        attrs={
            "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": published}]}},
            "HostConfig": {"RestartPolicy": {"Name": restart} if restart else {}},
        }
    )  # fmt: skip
    side = NuclioSide(None, lambda: {fn.name: entry}, profile, lambda name: container)
    return side.function(fn)


def test_a_moved_port_is_named_with_both_numbers_and_the_redeploy():
    fn = _function({}, 32771, "32805", "always")
    assert (fn.http_port, fn.published_port) == (32771, 32805)
    text = str(fn.why_port_moved())
    assert "the port moved: the dashboard says 32771, the container publishes 32805" in text
    assert "redeploy pth-lama (nuctl deploy" in text


def test_restart_policies_that_survive_a_daemon_restart():
    assert _function({}, 1, "1", "always").restarts_with_docker
    assert _function({}, 1, "1", "unless-stopped").restarts_with_docker
    assert not _function({}, 1, "1", "on-failure").restarts_with_docker
    bare = _function({}, 1, "1", None)
    assert bare.restart_policy == "no" and not bare.restarts_with_docker
    assert "restart policy 'no'" in str(bare.why_not_restarted_with_docker())


def test_event_timeout_none_means_no_bound():
    assert _function({"eventTimeout": ""}, 1, "1", "always").event_timeout_s is None
    assert _function({}, 1, "1", "always").event_timeout_s is None
    assert _function({"eventTimeout": "1m30s"}, 1, "1", "always").event_timeout_s == 90.0


def _fit(event_timeout: str, bridge: str | None, first: float = 0.4, p95: float = 1.2):
    stats = LatencyStats("pth-lama", first, 1.0, p95, 1.3, 10, 2.5, "cpu", "now")
    fn = _function({"eventTimeout": event_timeout}, 1, "1", "always")
    return TimeoutFit(
        stats, 2.0, (1920, 1920), fn.event_timeout, fn.event_timeout_s, bridge_timeout=bridge
    )


def test_timeouts_fit_what_the_function_needs():
    fit = _fit("30s", "900")
    assert fit.needed_s == 2.4 and fit.too_short() == []
    assert _fit("", None).too_short() == []  # no eventTimeout, not called by the bridge
    assert _fit("30s", "", first=500.0).bridge_timeout_s == 900.0  # unset: its default


def test_short_timeouts_name_both_numbers_and_the_fix():
    short = _fit("2s", "1.5")
    event, bridge = (str(d) for d in short.too_short())
    assert "eventTimeout 2s (2 s) is below what pth-lama needs: 2.40 s" in event
    assert "p95 1.20 s" in event and "1920×1920" in event
    assert "spec.eventTimeout in the function's function.yaml" in event
    assert "AUTO_ANN_TIMEOUT 1.5 s is below what pth-lama needs" in bridge
    assert "bridge/.env" in bridge
    cold = _fit("30s", "900", first=20.0)
    assert [d.subject for d in cold.too_short()] == ["nuclio-nuclio-pth-lama"]
