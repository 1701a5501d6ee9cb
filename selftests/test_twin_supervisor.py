"""The cvat-server twin image under real supervisord, run with `docker run` beside (never on)
a running twin: CVAT's confs and what supervisorctl, /proc and the logs show of them, the
rqworker command line and workerprobe, Smokescreen's FATAL / EXITED states, restarts after
SIGKILL, and admin rights that come from the `admin` group.

    .venv/bin/python -m pytest -p no:cacheprovider selftests/test_twin_supervisor.py -m twin_images
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from selftests.twin_images import wait_for

pytestmark = pytest.mark.twin_images

SOCK = "unix:///tmp/supervisord/supervisor.sock"
CTL = ("supervisorctl", "-s", SOCK)
ADMIN_PASSWORD = "Tw1n-Reef-Quadrat-7c4e"
RQWORKER_WEBHOOKS = "python3 /home/django/manage.py rqworker -v 3 webhooks --worker-class cvat.rqworker.DefaultWorker"


@pytest.fixture(scope="module")
def backend(lab):
    """cvat_db and cvat_redis_* from the twin's own images on the lab's network; returns the
    backend environment CVAT's compose file gives its server and workers."""
    image = lab.build("cvat-server")
    lab.network()
    lab.run("db", lab.build("postgres"),
            env={"POSTGRES_USER": "root", "POSTGRES_DB": "cvat", "POSTGRES_HOST_AUTH_METHOD": "trust"})  # fmt: skip
    lab.run("redis", lab.build("redis"))
    env = {
        "CVAT_POSTGRES_HOST": lab.name("db"),
        "CVAT_REDIS_INMEM_HOST": lab.name("redis"),
        "CVAT_REDIS_INMEM_PORT": "6379",
        "CVAT_REDIS_ONDISK_HOST": lab.name("redis"),
        "CVAT_REDIS_ONDISK_PORT": "6379",
        "CVAT_REDIS_INMEM_PASSWORD": "",
    }
    return image, env


def status(lab, name, *extra):
    result = lab.exec(name, *CTL, "status", *extra)
    return result.returncode, result.stdout


def states(text):
    """{'smokescreen': 'RUNNING', ...} from supervisorctl status output."""
    return dict(line.split()[:2] for line in text.splitlines() if line.strip())


def wait_states(lab, name, expected, timeout=90):
    def check():
        _rc, out = status(lab, name)
        got = states(out)
        return got if all(got.get(k) == v for k, v in expected.items()) else None

    return wait_for(check, timeout, what=f"{name}: {expected}")


@pytest.fixture(scope="module")
def server(lab, backend):
    image, env = backend
    name = lab.run("server", image, "init", "run", "server",
                   env={**env, "NUMPROCS": "2", "SMOKESCREEN_OPTS": "", "ALLOWED_HOSTS": "*"})  # fmt: skip
    wait_states(lab, name, {"uvicorn:uvicorn-0": "RUNNING", "uvicorn:uvicorn-1": "RUNNING",
                            "smokescreen": "RUNNING", "clamav_update": "EXITED"})  # fmt: skip
    return name


@pytest.fixture(scope="module")
def worker(lab, backend, server):
    image, env = backend
    name = lab.run("wh", image, "run", "worker.webhooks",
                   env={**env, "NUMPROCS": "1", "SMOKESCREEN_OPTS": ""})  # fmt: skip
    wait_states(
        lab, name, {"rqworker-webhooks:rqworker-webhooks-0": "RUNNING", "smokescreen": "RUNNING"}
    )
    return name


def test_server_status_lines_like_cvats(lab, server):
    rc, out = status(lab, server)
    lines = out.splitlines()
    assert re.fullmatch(r"clamav_update +EXITED +\w{3} \d\d \d\d:\d\d [AP]M", lines[0]), out
    assert re.fullmatch(r"smokescreen +RUNNING +pid \d+, uptime \d+:\d\d:\d\d", lines[1]), out
    assert re.fullmatch(r"uvicorn:uvicorn-0 +RUNNING +pid \d+, uptime \d+:\d\d:\d\d", lines[2]), out
    assert re.fullmatch(r"uvicorn:uvicorn-1 +RUNNING +pid \d+, uptime \d+:\d\d:\d\d", lines[3]), out
    # supervisorctl status exits 3 when any process is not running: clamav_update is EXITED
    assert rc == 3, out
    rc_c = lab.exec(server, "supervisorctl", "-c", "supervisord/server.conf", "status")
    assert rc_c.returncode == 3 and states(rc_c.stdout) == states(out), rc_c.stdout
    # No system-wide conf (CVAT's supervisor comes from pip): without -s/-c it tries
    # supervisorctl's default http://localhost:9001 and fails.
    assert lab.exec(server, "supervisorctl", "status").returncode != 0
    assert lab.exec(server, "id", "-un").stdout.strip() == "django"


def test_server_answers_from_every_process_on_8080(lab, server):
    body = _http(lab, server, "GET", "/api/server/about")
    assert json.loads(body)["version"] == "2.29.0"
    for proc in ("uvicorn:uvicorn-0", "uvicorn:uvicorn-1"):
        pid = lab.exec(server, *CTL, "pid", proc).stdout.strip()
        cmdline = lab.exec(server, "cat", f"/proc/{pid}/cmdline").stdout.split("\0")
        assert cmdline[:4] == ["python3", "-m", "cvat_twin.runserver", "--fd"], cmdline


def _http(lab, name, method, path, token=None, data=None):
    """One request to the API twin from inside its container; the body (raises on >= 400)."""
    script = (
        "import sys, urllib.request, json\n"
        "m, p, t, d = sys.argv[1:5]\n"
        "h = {'Host': 'localhost', 'Content-Type': 'application/json'}\n"
        "if t: h['Authorization'] = 'Token ' + t\n"
        "r = urllib.request.Request('http://127.0.0.1:8080' + p, method=m, headers=h,"
        " data=d.encode() if d else None)\n"
        "try:\n"
        "    print(urllib.request.urlopen(r, timeout=10).read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read().decode()); sys.exit(3)\n"
    )
    result = lab.exec(name, "python3", "-c", script, method, path, token or "",
                      json.dumps(data) if data is not None else "")  # fmt: skip
    if result.returncode == 3:
        raise PermissionError(result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _login(lab, name, username, password):
    return json.loads(_http(lab, name, "POST", "/api/auth/login",
                            data={"username": username, "password": password}))["key"]  # fmt: skip


def _self(lab, name, token):
    return json.loads(_http(lab, name, "GET", "/api/users/self", token=token))


def test_admin_rights_come_from_the_admin_group(lab, server):
    created = lab.exec(server, "python3", "manage.py", "createsuperuser", "--noinput",
                       env={"DJANGO_SUPERUSER_USERNAME": "admin",
                            "DJANGO_SUPERUSER_EMAIL": "admin@localhost",
                            "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = _login(lab, server, "admin", ADMIN_PASSWORD)
    me = _self(lab, server, token)
    assert (me["groups"], me["is_staff"], me["is_superuser"]) == (["admin"], True, True)
    _http(lab, server, "POST", "/api/auth/register", data={
        "username": "reef", "email": "reef@example.org",
        "password1": "Reef-pass-9921", "password2": "Reef-pass-9921"})  # fmt: skip
    reef = _login(lab, server, "reef", "Reef-pass-9921")
    assert _self(lab, server, reef)["groups"] == ["user"]
    project = json.loads(_http(lab, server, "POST", "/api/projects", token=reef,
                               data={"name": "reef's"}))  # fmt: skip
    # the admin sees another user's project
    listed = json.loads(_http(lab, server, "GET", "/api/projects", token=token))
    assert project["id"] in [p["id"] for p in listed["results"]]

    # The fault the README documents: out of `admin`, is_staff and is_superuser still true.
    sql = (
        "DELETE FROM auth_user_groups WHERE user_id = (SELECT id FROM auth_user"
        " WHERE username = 'admin') AND group_id = (SELECT id FROM auth_group WHERE name = 'admin');"
    )
    fault = lab.exec(lab.name("db"), "psql", "-U", "root", "-d", "cvat", "-c", sql)
    assert fault.stdout.strip() == "DELETE 1", fault.stdout + fault.stderr
    me = _self(lab, server, token)
    assert (me["groups"], me["is_staff"], me["is_superuser"]) == ([], True, True)
    listed = json.loads(_http(lab, server, "GET", "/api/projects", token=token))
    assert project["id"] not in [p["id"] for p in listed["results"]]
    with pytest.raises(PermissionError, match=r"^403 "):
        _http(lab, server, "GET", f"/api/projects/{project['id']}", token=token)
    with pytest.raises(PermissionError, match=r"^403 "):
        _http(lab, server, "POST", "/api/projects", token=token, data={"name": "no role"})

    # CVAT's post_save signal: the last_login save of a password login restores `admin`.
    token = _login(lab, server, "admin", ADMIN_PASSWORD)
    assert _self(lab, server, token)["groups"] == ["admin"]


def test_worker_status_cmdline_probe_and_job(lab, worker):
    rc, out = status(lab, worker)
    lines = out.splitlines()
    assert rc == 0, out
    assert re.fullmatch(
        r"rqworker-webhooks:rqworker-webhooks-0 +RUNNING +pid \d+, uptime \d+:\d\d:\d\d", lines[0]
    ), out
    assert re.fullmatch(r"smokescreen +RUNNING +pid \d+, uptime \d+:\d\d:\d\d", lines[1]), out
    pid = lab.exec(worker, *CTL, "pid", "rqworker-webhooks:rqworker-webhooks-0").stdout.strip()
    cmdline = lab.exec(worker, "cat", f"/proc/{pid}/cmdline").stdout
    assert cmdline.rstrip("\0").split("\0") == RQWORKER_WEBHOOKS.split(" ")

    probe = lab.exec(worker, "python3", "manage.py", "workerprobe", "webhooks")
    assert (probe.returncode, probe.stdout, probe.stderr) == (0, "", "")
    probe = lab.exec(worker, "python3", "manage.py", "workerprobe", "annotation")
    assert probe.returncode == 1
    assert probe.stderr == "CommandError: Unhealthy workers in the annotation queue\n"
    probe = lab.exec(worker, "python3", "manage.py", "workerprobe", "nope")
    assert (probe.returncode, probe.stderr) == (1, "CommandError: Queue nope is not defined\n")

    # The worker consumes a job of its queue (enqueued from the server, run on the worker).
    script = (
        "import time\nfrom redis import Redis\nfrom rq import Queue\n"
        "from cvat_twin import settings\n"
        "q = Queue('webhooks', connection=Redis.from_url(settings.redis_inmem_url()))\n"
        "job = q.enqueue('platform.node')\n"
        "deadline = time.time() + 30\n"
        "while job.get_status() != 'finished' and time.time() < deadline: time.sleep(0.2)\n"
        "print(job.get_status(), job.result)\n"
    )
    ran = lab.exec(lab.name("server"), "python3", "-c", script)
    hostname = lab.exec(worker, "hostname").stdout.strip()
    assert ran.stdout.split() == ["finished", hostname], ran.stdout + ran.stderr


def test_smokescreen_sigterm_stays_exited_worker_sigkill_restarts(lab, backend, server):
    image, env = backend
    name = lab.run("wh2", image, "run", "worker.webhooks",
                   env={**env, "NUMPROCS": "1", "SMOKESCREEN_OPTS": ""})  # fmt: skip
    proc = "rqworker-webhooks:rqworker-webhooks-0"
    wait_states(lab, name, {proc: "RUNNING", "smokescreen": "RUNNING"})
    smokescreen_pid = lab.exec(name, *CTL, "pid", "smokescreen").stdout.strip()
    worker_pid = lab.exec(name, *CTL, "pid", proc).stdout.strip()

    assert lab.exec(name, "kill", "-TERM", smokescreen_pid).returncode == 0
    assert lab.exec(name, "kill", "-KILL", worker_pid).returncode == 0

    def restarted():
        got = states(status(lab, name)[1])
        new_pid = lab.exec(name, *CTL, "pid", proc).stdout.strip()
        return new_pid if got.get(proc) == "RUNNING" and new_pid not in ("0", worker_pid) else None

    new_pid = wait_for(restarted, 30, what="the worker back with a new pid")
    wait_for(lambda: states(status(lab, name)[1]).get("smokescreen") == "EXITED", 10)
    rc, out = status(lab, name)
    assert re.search(r"^smokescreen +EXITED +\w{3} \d\d \d\d:\d\d [AP]M$", out, re.M), out
    assert rc == 3, out
    tail = lab.exec(name, *CTL, "maintail", "-20000").stdout
    assert "INFO exited: smokescreen (exit status 0; expected)" in tail, tail[-3000:]
    assert "WARN exited: rqworker-webhooks-0 (terminated by SIGKILL; not expected)" in tail
    assert f"INFO spawned: 'rqworker-webhooks-0' with pid {new_pid}" in tail
    logfile = lab.exec(name, "cat", "/home/django/logs/supervisord.log").stdout
    assert f"INFO spawned: 'rqworker-webhooks-0' with pid {new_pid}" in logfile
    # A SIGKILLed worker leaves its registration in Redis until its TTL runs out, so CVAT's
    # probe counts two workers for NUMPROCS=1 meanwhile.
    probe = lab.exec(name, "python3", "manage.py", "workerprobe", "webhooks")
    assert probe.returncode == 1, probe.stderr
    # Smokescreen stays down: supervisord restarts only unexpected exits.
    assert states(status(lab, name)[1])["smokescreen"] == "EXITED"


def test_unset_smokescreen_opts_keeps_supervisord_from_starting(lab, backend, server):
    image, env = backend
    name = lab.run("unset", image, "run", "worker.webhooks",
                   env={**env, "NUMPROCS": "1"})  # fmt: skip
    wait_for(lambda: lab.state(name)[0] == "exited", 60, what=f"{name} to exit")
    assert lab.state(name) == ["exited", "2"]
    logs = lab.logs(name)
    assert (
        "Error: Format string 'smokescreen --listen-ip=127.0.0.1 %(ENV_SMOKESCREEN_OPTS)s' for "
        "'program:smokescreen.command' contains names ('ENV_SMOKESCREEN_OPTS') which cannot be "
        "expanded."
    ) in logs, logs[-2000:]


def test_bad_smokescreen_option_is_fatal_while_the_container_runs(lab, backend, server):
    image, env = backend
    name = lab.run("bad", image, "run", "worker.webhooks",
                   env={**env, "NUMPROCS": "1", "SMOKESCREEN_OPTS": "--allow-address=bridge.gateway"})  # fmt: skip
    wait_states(lab, name, {"smokescreen": "FATAL"}, timeout=60)
    _rc, out = status(lab, name)
    assert re.search(r"^smokescreen +FATAL +Exited too quickly \(process log may have details\)$",
                     out, re.M), out  # fmt: skip
    assert states(out)["rqworker-webhooks:rqworker-webhooks-0"] == "RUNNING"
    assert lab.state(name)[0] == "running"
    closed = lab.exec(
        name, "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 4750), 2)"
    )
    assert "ConnectionRefusedError" in closed.stderr
    tail = lab.exec(name, *CTL, "maintail", "-20000").stdout
    assert (
        "INFO gave up: smokescreen entered FATAL state, too many start retries too quickly" in tail
    )
    assert "WARN exited: smokescreen (exit status 1; not expected)" in tail


# conf -> the status each of its programs reaches (NUMPROCS as CVAT's docker-compose.yml sets)
CONFS = {
    "utils": ("1", {"rqscheduler": "RUNNING", "rqworker": "RUNNING"}),
    "worker.annotation": ("1", {"rqworker-annotation:rqworker-annotation-0": "RUNNING",
                                "smokescreen": "RUNNING"}),
    "worker.import": ("2", {"rqworker-import:rqworker-import-0": "RUNNING",
                            "rqworker-import:rqworker-import-1": "RUNNING",
                            "clamav-update": "EXITED", "smokescreen": "RUNNING"}),
    "worker.export": ("2", {"rqworker-export:rqworker-export-0": "RUNNING",
                            "rqworker-export:rqworker-export-1": "RUNNING",
                            "smokescreen": "RUNNING"}),
    "worker.chunks": ("2", {"rqworker-chunks:rqworker-chunks-0": "RUNNING",
                            "rqworker-chunks:rqworker-chunks-1": "RUNNING",
                            "smokescreen": "RUNNING"}),
    "worker.quality_reports": ("1", {
        "rqworker-quality-reports:rqworker-quality-reports-0": "RUNNING"}),
    "worker.analytics_reports": ("2", {
        "rqworker-analytics-reports:rqworker-analytics-reports-0": "RUNNING",
        "rqworker-analytics-reports:rqworker-analytics-reports-1": "RUNNING"}),
}  # fmt: skip


def test_every_conf_runs_cvats_programs(lab, backend, server):
    image, env = backend
    names = {}
    for conf, (numprocs, _expected) in CONFS.items():
        names[conf] = lab.run(conf.replace(".", "-").replace("_", "-"), image, "run", conf,
                              env={**env, "NUMPROCS": numprocs, "SMOKESCREEN_OPTS": ""})  # fmt: skip
    for conf, (_numprocs, expected) in CONFS.items():
        got = wait_states(lab, names[conf], expected)
        assert got == expected, (conf, got)
        for program in expected:
            if program.startswith("rqworker"):
                pid = lab.exec(names[conf], *CTL, "pid", program).stdout.strip()
                argv = lab.exec(names[conf], "cat", f"/proc/{pid}/cmdline").stdout.rstrip("\0")
                assert argv.split("\0")[:4] == ["python3", "/home/django/manage.py", "rqworker",
                                                "-v"], (conf, argv)  # fmt: skip
                assert shlex.join(argv.split("\0")).endswith(
                    "--worker-class cvat.rqworker.DefaultWorker"
                ), argv
