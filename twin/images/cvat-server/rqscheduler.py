#!/usr/bin/env python3
"""Stand-in for CVAT's ~/rqscheduler.py (rq-scheduler) in cvat_utils: same command line,
connects to Redis and polls every `-i` seconds; the twin schedules no periodic jobs.

    python3 ~/rqscheduler.py --host H --port P --password PW -i 30 --path ~
"""

import argparse
import logging
import signal
import sys
import time

import redis


def main(argv):
    parser = argparse.ArgumentParser(prog="rqscheduler.py")
    parser.add_argument("-H", "--host", default="localhost")
    parser.add_argument("-p", "--port", type=int, default=6379)
    parser.add_argument("-P", "--password", default="")
    parser.add_argument("-d", "--db", type=int, default=0)
    parser.add_argument("-i", "--interval", type=float, default=60.0)
    parser.add_argument("--path", default=".")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.path)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
    )
    log = logging.getLogger("rq_scheduler.scheduler")
    conn = redis.Redis(host=args.host, port=args.port, password=args.password or None, db=args.db)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    log.info("Registering birth")
    while not stopping:
        try:
            conn.ping()
        except redis.RedisError as exc:
            log.warning("Redis unavailable: %s", exc)
        deadline = time.monotonic() + args.interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.2)
    log.info("Registering death")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
