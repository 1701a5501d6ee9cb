"""The few Docker Engine API calls the local platform makes, over the mounted socket.

    api = DockerAPI()                       # /var/run/docker.sock, or DOCKER_SOCKET
    cid = api.create_container("nuclio-nuclio-echo", {"Image": "echo:latest"})
    api.start(cid)
    api.inspect(cid)["State"]["Health"]["Status"]

The real dashboard shells out to the docker CLI (pkg/dockerclient/shell.go); the twin talks to
the same engine API the CLI uses, without the CLI, so the image carries no docker binary.
"""

import http.client
import json
import os
import socket
import struct
from urllib.parse import quote, urlencode


class DockerError(Exception):
    """An engine answer >= 400; message is the engine's own text, as the CLI prints it."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class DockerAPI:
    def __init__(self, socket_path=None, timeout=120):
        self.socket_path = socket_path or os.environ.get("DOCKER_SOCKET", "/var/run/docker.sock")
        self.timeout = timeout

    def _request(self, method, path, body=None, query=None, raw=False, timeout=None):
        if query:
            path = f"{path}?{urlencode(query)}"
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode(errors="replace").strip()
            raise DockerError(response.status, message)
        if raw:
            return data
        return json.loads(data) if data else None

    # containers

    def list_containers(self, all_=False, labels=None, name=None):
        filters = {}
        if labels:
            filters["label"] = [f"{k}={v}" for k, v in labels.items()]
        if name:
            # like the shell client's --filter "name=^/<name>$": an exact match
            filters["name"] = [f"^/{name}$"]
        query = {"all": "1" if all_ else "0"}
        if filters:
            query["filters"] = json.dumps(filters)
        return self._request("GET", "/containers/json", query=query)

    def create_container(self, name, config):
        return self._request("POST", "/containers/create", body=config, query={"name": name})["Id"]

    def start(self, container_id):
        self._request("POST", f"/containers/{quote(container_id)}/start")

    def wait(self, container_id, timeout=120):
        return self._request("POST", f"/containers/{quote(container_id)}/wait", timeout=timeout)

    def inspect(self, container_id):
        return self._request("GET", f"/containers/{quote(container_id)}/json")

    def remove(self, container_id, force=True):
        self._request(
            "DELETE",
            f"/containers/{quote(container_id)}",
            query={"force": "1" if force else "0", "v": "0"},
        )

    def logs(self, container_id, tail="100"):
        data = self._request(
            "GET",
            f"/containers/{quote(container_id)}/logs",
            query={"stdout": "1", "stderr": "1", "tail": tail},
            raw=True,
        )
        return _demux(data)

    # images and volumes

    def inspect_image(self, image):
        return self._request("GET", f"/images/{quote(image, safe='/:@')}/json")

    def create_volume(self, name, labels=None):
        self._request("POST", "/volumes/create", body={"Name": name, "Labels": labels or {}})

    def remove_volume(self, name):
        try:
            self._request("DELETE", f"/volumes/{quote(name)}")
        except DockerError as exc:
            if exc.status != 404:
                raise


def _demux(data):
    """Docker's multiplexed log stream (8-byte frame headers) to plain text."""
    out = bytearray()
    offset = 0
    while offset + 8 <= len(data):
        _stream, size = struct.unpack(">BxxxL", data[offset : offset + 8])
        out += data[offset + 8 : offset + 8 + size]
        offset += 8 + size
    if offset == 0 and data:
        out = bytearray(data)  # a TTY container's logs are not framed
    return out.decode(errors="replace")
