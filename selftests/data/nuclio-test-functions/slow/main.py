"""Slow: sleeps for the seconds given in the JSON body ({"seconds": 3}), then answers."""

import time


def handler(context, event):
    seconds = float((event.body or {}).get("seconds", 3)) if isinstance(event.body, dict) else 3.0
    time.sleep(seconds)
    return {"slept": seconds}
