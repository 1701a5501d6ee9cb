"""Webhook events of engine changes (cvat/apps/webhooks/signals.py): collected during a
transaction, resolved against the project's webhooks, enqueued on RQ `webhooks` after commit."""

import logging

from .. import webhooks

log = logging.getLogger("cvat.webhooks")


class Event:
    def __init__(self, name, project_id, resource, obj, before_update):
        self.name = name
        self.project_id = project_id
        self.resource = resource
        self.obj = obj
        self.before_update = before_update


def changed(before, after):
    """before_update: the old values of the fields that changed, in serializer order."""
    return {k: v for k, v in before.items() if after.get(k) != v}


def resolve(cur, queued, sender):
    """Replace the events in `queued` by (webhook_id, payload) items, in order: CVAT's
    select_webhooks picks the active organization webhooks of the object's organization (none
    for an object in a sandbox), then the active project webhooks of its project."""
    items = []
    for event in queued:
        if not isinstance(event, Event):
            continue
        org_id = event.obj.get("organization") if isinstance(event.obj, dict) else None
        hooks = []
        if org_id is not None:
            cur.execute(
                "SELECT id, events FROM twin_webhook WHERE type = 'organization'"
                " AND organization_id = %s AND is_active ORDER BY id",
                (org_id,),
            )
            hooks += cur.fetchall()
        if event.project_id is not None:
            cur.execute(
                "SELECT id, events FROM twin_webhook WHERE type = 'project'"
                " AND project_id = %s AND is_active ORDER BY id",
                (event.project_id,),
            )
            hooks += cur.fetchall()
        for hook in hooks:
            if event.name not in hook["events"]:
                continue
            payload = {"event": event.name, event.resource: event.obj, "sender": sender}
            if event.before_update is not None:
                payload["before_update"] = event.before_update
            payload["webhook_id"] = hook["id"]
            items.append((hook["id"], payload))
    queued[:] = items


def flush(queued):
    items = [item for item in queued if isinstance(item, tuple)]
    if not items:
        return
    try:
        webhooks.enqueue("cvat_twin.webhooks.deliver_batch", items)
    except Exception as exc:  # Redis down: the change is committed, the events are lost
        log.error("cannot enqueue webhook events: %s", exc)
