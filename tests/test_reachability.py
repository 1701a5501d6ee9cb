"""Reachability layer: the calls the pipeline makes between containers, made from inside
those containers. From the bridge: the Nuclio dashboard (NUCLIO_HOST/NUCLIO_PORT where set)
and every function's trigger at nuclio-nuclio-<fn>:8080 (the bridge's path); from cvat_server
(online calls) and cvat_worker_annotation (batch requests): every function at
host.docker.internal:<httpPort>, the path CVAT's lambda manager takes.

    pytest -m reachability

Any HTTP answer counts: a handler that needs a body may answer an empty request with 500,
which is the inference layer's business; only "no answer" fails here.
"""

from __future__ import annotations

import pytest
from criobe_verify.fixtures.probe_plan import (
    dashboard_from_bridge_call,
    function_from_bridge_call,
    function_from_cvat_call,
)

from criobe_verify.check import check
from criobe_verify.diagnosis import Diagnosis, fail

pytestmark = pytest.mark.reachability


def _deployed(dashboard, fn) -> dict:
    entry = dashboard.function(fn.name)
    if entry is None:
        if fn.optional:
            pytest.skip(f"{fn.name}: optional in the profile and not deployed")
        pytest.skip(f"depends on functions/deployed-and-ready[{fn.name}]")
    return entry


@check("reachability/bridge-reaches-dashboard", guide="step-7")
def test_bridge_reaches_the_nuclio_dashboard(bridge_env, container_named, prober):
    host = bridge_env.get("NUCLIO_HOST") or "nuclio"
    port = bridge_env.get("NUCLIO_PORT") or "8070"
    url = f"http://{host}:{port}/api/versions"
    r = prober.run(container_named("bridge"), *dashboard_from_bridge_call(bridge_env))
    if r.status == 200:
        return
    fail(
        Diagnosis(
            "bridge",
            f"GET {url} from inside the bridge " + (f"answered {r.status}" if r.ok else "failed"),
            observed=r.error or repr(r.body)[:200],
            why=f"NUCLIO_HOST={bridge_env.get('NUCLIO_HOST', '(unset)')}, "
            f"NUCLIO_PORT={bridge_env.get('NUCLIO_PORT', '(unset)')} in its environment",
            expected="200 from the dashboard on cvat_cvat",
            consequence="the bridge cannot look the functions up",
            fix="NUCLIO_HOST=nuclio and NUCLIO_PORT=8070 in bridge/.env; both on cvat_cvat",
        )
    )


@check("reachability/bridge-reaches-function", guide="step-7")
def test_bridge_reaches_the_function(expected_function, dashboard, container_named, prober):
    fn = expected_function
    _deployed(dashboard, fn)
    url = f"http://{fn.container}:8080/"
    r = prober.run(container_named("bridge"), *function_from_bridge_call(fn.container))
    if r.ok:
        return
    fail(
        Diagnosis(
            "bridge",
            f"GET {url} from inside the bridge got no HTTP answer",
            observed=r.error or "",
            expected="any HTTP answer from the function's trigger",
            consequence=f"the bridge cannot call {fn.name}",
            fix=f"deploy {fn.name} on cvat_cvat (spec.platform.attributes.network); "
            f"docker logs {fn.container}",
        )
    )


@check("reachability/cvat-reaches-function", guide="step-6")
def test_cvat_reaches_the_function_as_its_lambda_manager_does(
    cvat_to_function, dashboard, container_named, prober
):
    source, fn = cvat_to_function
    entry = _deployed(dashboard, fn)
    port = (entry.get("status") or {}).get("httpPort")
    url = f"http://host.docker.internal:{port}/"
    r = prober.run(container_named(source), *function_from_cvat_call(port))
    if r.ok:
        return
    extra = container_named(source).attrs["HostConfig"].get("ExtraHosts") or []
    mapped = any(e.startswith("host.docker.internal:") for e in extra)
    fail(
        Diagnosis(
            source,
            f"GET {url} from inside {source} got no HTTP answer",
            observed=r.error or "",
            why=""
            if mapped
            else "extra_hosts has no host.docker.internal entry: the "
            "serverless overlay's host.docker.internal:host-gateway is missing",
            expected=f"any HTTP answer from {fn.name}'s published port {port}",
            consequence=f"CVAT's {'online calls' if source == 'cvat_server' else 'automatic annotation requests'} "
            f"to {fn.name} fail with 503",
            fix="components/serverless/docker-compose.serverless.yml in the -f list"
            if not mapped
            else f"the function's container must publish its trigger (docker port {fn.container})",
        )
    )
