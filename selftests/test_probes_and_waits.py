"""Probes without the tool they need, and waits that fail fast or with their own diagnosis,
on stand-in Docker objects."""

from __future__ import annotations

import json

import pytest

from criobe_verify import probes, waiting
from criobe_verify.diagnosis import CheckFailed, Diagnosis
from criobe_verify.probe_answers import Resolution
from criobe_verify.probes import Prober, ProbeUnavailable
from criobe_verify.waiting import (
    AllOf,
    Appears,
    ContainerWait,
    LogLine,
    Stopwatch,
    WaitFailed,
    WaitTimeout,
    settle,
    wait_for,
    wait_until,
)

NOT_FOUND = (
    'OCI runtime exec failed: exec failed: unable to start container process: exec: "python3": '
    "executable file not found in $PATH: unknown"
)


class FakeContainer:
    def __init__(self, name: str, status: str = "running", restarts: int = 0, health=None):
        self.name, self.id = name, f"id-{name}"
        self.attrs = {
            "State": {"Status": status, **({"Health": {"Status": health}} if health else {})},
            "RestartCount": restarts,
        }

    def logs(self, **_):
        return b"last words\n"


class FakeHelper:
    def __init__(self, output: dict):
        self.output = output
        self.removed = False

    def wait(self, timeout):
        return {"StatusCode": 0}

    def logs(self, **_):
        return (json.dumps(self.output) + "\n").encode()

    def remove(self, force):
        self.removed = True


class FakeClient:
    def __init__(self):
        self.runs = []
        self.helper = FakeHelper({"ok": True, "addresses": ["172.23.0.5"]})

    @property
    def containers(self):
        return self

    def run(self, image, **kwargs):
        self.runs.append((image, kwargs))
        return self.helper


def test_a_container_without_python3_is_probed_from_a_helper_sharing_its_namespaces(monkeypatch):
    monkeypatch.setattr(probes, "exec_in", lambda c, cmd, timeout_s: (126, NOT_FOUND))
    client = FakeClient()
    prober = Prober(client, helper_image="cvat/server:v2.29.0")
    opa = FakeContainer("cvat_opa")
    result = prober.run(opa, "resolve", "cvat-server")
    assert result == Resolution(addresses=("172.23.0.5",), via="helper cvat/server:v2.29.0")
    image, kwargs = client.runs[0]
    assert image == "cvat/server:v2.29.0"
    assert kwargs["network_mode"] == kwargs["pid_mode"] == "container:id-cvat_opa"
    assert client.helper.removed
    # Known now: the next probe goes straight to a helper.
    prober.run(opa, "resolve", "opa")
    assert len(client.runs) == 2


def test_without_a_helper_image_the_probe_names_the_container_and_the_tool(monkeypatch):
    monkeypatch.setattr(probes, "exec_in", lambda c, cmd, timeout_s: (127, NOT_FOUND))
    with pytest.raises(ProbeUnavailable) as err:
        Prober(FakeClient(), helper_image=None).run(FakeContainer("traefik"), "resolve", "x")
    assert "traefik: has no python3" in str(err.value)
    assert "executable file not found" in str(err.value)


def test_a_failing_probe_is_not_taken_for_a_missing_tool(monkeypatch):
    monkeypatch.setattr(
        probes, "exec_in", lambda c, cmd, timeout_s: (0, '{"ok": false, "error": "[Errno -2]"}')
    )
    client = FakeClient()
    result = Prober(client, "img").run(FakeContainer("bridge"), "resolve", "cvat-server")
    assert result == Resolution(error="[Errno -2]", via="exec") and not client.runs


def test_readiness_fails_at_once_when_a_container_exits():
    container = FakeContainer("cvat_server")
    strategy = AllOf(ContainerWait("cvat_server", lambda: container))
    container.attrs["State"]["Status"] = "exited"
    with pytest.raises(WaitFailed) as err:
        wait_for(strategy, timeout=60, what="stack")
    assert "cvat_server: status 'exited'" in str(err.value) and "last words" in str(err.value)


def test_readiness_fails_at_once_when_a_container_is_restarted_while_waiting():
    container = FakeContainer("cvat_opa", status="restarting")
    strategy = ContainerWait("cvat_opa", lambda: container)
    assert strategy.check()[0] is False
    container.attrs["RestartCount"] = 1
    with pytest.raises(WaitFailed, match="restart count 1"):
        strategy.check()


def test_readiness_fails_at_once_on_unhealthy_and_waits_on_starting():
    container = FakeContainer("nuclio", health="starting")
    strategy = ContainerWait("nuclio", lambda: container)
    assert strategy.check() == (False, "health 'starting'")
    container.attrs["State"]["Health"] = {"Status": "unhealthy", "Log": [{"Output": "refused"}]}
    with pytest.raises(WaitFailed, match="health 'unhealthy'"):
        strategy.check()


def test_a_wait_that_times_out_says_what_it_last_saw():
    strategy = ContainerWait("bridge", lambda: None)
    with pytest.raises(WaitTimeout) as err:
        wait_for(strategy, timeout=0.2, what="stack", interval=0.05)
    assert "last status: not created" in str(err.value) and "bridge: not created" in str(err.value)


def _stalled(how):
    return Diagnosis("bridge", f"stalled: {how.ended}", observed=how.last)


def test_a_check_waiting_for_something_fails_with_the_strategys_own_diagnosis():
    looks = iter(range(1, 100))
    with pytest.raises(CheckFailed) as err:
        Appears("the delivery", lambda: (None, f"look {next(looks)}"), _stalled).wait(
            0.2, interval=0.05
        )
    last = int(str(err.value).rsplit("look ", 1)[1].rstrip("."))
    assert "bridge: stalled: not there after 0 s: look " in str(err.value) and last > 1
    assert err.value.__context__ is None  # the report shows the diagnosis, not a traceback chain
    assert err.value.diagnoses[0].subject == "bridge"


def test_what_appears_is_handed_back():
    looks = iter([(None, "none yet"), ({"id": 7}, "1 task")])
    assert Appears("the task", lambda: next(looks), _stalled).wait(5, interval=0.01) == {"id": 7}


def test_a_hopeless_wait_gives_up_at_its_first_ask_saying_why():
    clock = Stopwatch()
    wait = Appears("the stage", lambda: (None, "0 shapes"), _stalled, every=0.2,
                   hopeless=lambda: "the bridge container is exited (exit code 137)")  # fmt: skip
    with pytest.raises(CheckFailed) as err:
        wait.wait(30, interval=0.05)
    assert 0.2 <= clock.elapsed() < 5  # asked `every` s after the first look, then given up
    assert "stalled: the bridge container is exited (exit code 137) (0 s in): 0 shapes" in str(
        err.value
    )


def test_a_look_that_knows_it_cannot_come_fails_at_once():
    def look():
        raise WaitFailed("'failed': 'no worker'")

    with pytest.raises(CheckFailed, match="stalled: 'failed': 'no worker'"):
        Appears("task data", look, _stalled).wait(30)


def test_the_pause_grows_by_the_backoff_up_to_its_bound(monkeypatch):
    pauses = []
    monkeypatch.setattr(waiting.time, "sleep", pauses.append)
    looks = iter([(False, "queued")] * 6 + [(True, "finished")])
    wait_until(lambda: next(looks), timeout=60, what="x", interval=0.05, backoff=2, max_interval=1)
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1]


def test_a_log_line_that_does_not_come_names_the_container_state_and_its_log():
    container = FakeContainer("receiver")
    container.reload = lambda: None
    container.status = "running"
    with pytest.raises(WaitTimeout) as err:
        wait_for(LogLine("webhook receiver", container, "listening"), timeout=0.1, what="r",
                 interval=0.05)  # fmt: skip
    message = str(err.value)
    assert "'listening' not in its log: not there after 0 s" in message and "last words" in message
    container.status = "exited"
    with pytest.raises(WaitFailed, match="it is exited"):
        wait_for(LogLine("webhook receiver", container, "listening"), timeout=5, what="r")


def test_a_state_that_settles_late_is_handed_back_as_it_last_was(monkeypatch):
    monkeypatch.setattr(waiting.time, "sleep", lambda s: None)
    looks = iter([(False, "smokescreen BACKOFF")] * 3 + [(True, "settled")])
    assert settle(lambda: next(looks), timeout=60, what="supervisord") == "settled"
    looks = iter([(False, "health 'starting'"), (False, "health 'starting' still")])
    assert settle(lambda: next(looks), timeout=0, what="health") == "health 'starting'"
