"""The lab's own CVAT webhooks to the bridge, read as the CRIOBE docs write them.

    >>> h = BridgeHook.parse({"id": 7, "project_id": 2, "description": "",
    ...     "target_url": "http://bridge.gateway:8000/crop-quadrat-and-create-new-task-webhook"
    ...                   "?target_proj_id=3"}, "bridge.gateway")
    >>> h.endpoint, h.target_project, h.model
    ('crop-quadrat-and-create-new-task-webhook', 3, None)
    >>> BridgeHook.parse({"id": 8, "project_id": 2, "description": "criobe-verify-20261201193000"
    ...     "-1a2b3c", "target_url": "http://bridge.gateway:8000/health"}, "bridge.gateway")

Webhooks the suite created (run prefix, see cleanup.py) and webhooks to other hosts are not
the lab's bridge webhooks (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from criobe_verify.cleanup import is_left_over

# The bridge endpoints of the CRIOBE docs, and the query parameter each one needs.
ENDPOINTS = {
    "detect-model-webhook": "model_name",
    "crop-quadrat-and-create-new-task-webhook": "target_proj_id",
    "remove-grid-and-create-new-task-webhook": "target_proj_id",
}
BRIDGE_HOSTS = ("bridge", "host.docker.internal")


@dataclass(frozen=True)
class BridgeHook:
    id: int
    project_id: int | None
    target_url: str
    endpoint: str
    model: str | None
    target_project: int | str | None

    @classmethod
    def parse(cls, webhook: dict, gateway_host: str) -> BridgeHook | None:
        if is_left_over(webhook.get("description") or ""):
            return None
        url = urlsplit(webhook.get("target_url") or "")
        if url.hostname not in (gateway_host, *BRIDGE_HOSTS):
            return None
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        target = query.get("target_proj_id")
        return cls(
            id=webhook["id"],
            project_id=webhook.get("project_id"),
            target_url=webhook["target_url"],
            endpoint=url.path.strip("/"),
            model=query.get("model_name"),
            target_project=int(target) if target and target.isdigit() else target,
        )

    def problems(self, projects: set[int], functions: set[str]) -> list[str]:
        """What the bridge will not find: sentences, empty when the hook is well-formed.

        >>> BridgeHook(1, 2, "u", "detect-model-webhook", "pth-yolo-x", None).problems(
        ...     {2}, {"pth-yolo-gridcorners"})
        ["model_name 'pth-yolo-x' is not a function CVAT lists (pth-yolo-gridcorners)"]
        """
        needed = ENDPOINTS.get(self.endpoint)
        if needed is None:
            return []  # /health and other paths carry no reference to check
        if needed == "model_name":
            if not self.model:
                return ["no model_name in the URL"]
            if self.model not in functions:
                listed = ", ".join(sorted(functions)) or "none"
                return [f"model_name {self.model!r} is not a function CVAT lists ({listed})"]
            return []
        if self.target_project is None:
            return ["no target_proj_id in the URL"]
        if self.target_project not in projects:
            return [f"target_proj_id={self.target_project} is not a project in CVAT"]
        if self.target_project == self.project_id:
            return [f"target_proj_id={self.target_project} is the webhook's own project"]
        return []
