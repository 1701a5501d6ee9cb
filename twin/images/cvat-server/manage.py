#!/usr/bin/env python3
"""Placeholder for CVAT's ~/manage.py: the twin's subset of its commands.

manage.py migrate [--check]     apply (or check) the twin's schema migrations
manage.py health_check          exit 0 when the database answers
manage.py createsuperuser [--noinput] [--username U] [--email E]
                                Django's command; --noinput reads DJANGO_SUPERUSER_USERNAME,
                                DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD
manage.py rqworker [-v N] <queue...> [--worker-class X]
                                django-rq's worker on the twin's Redis, in this process
manage.py workerprobe <queue...>
                                CVAT's liveness probe: NUMPROCS live workers of this host
"""

import sys

from cvat_twin import migrate


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "migrate":
        return migrate.main(["check"] if "--check" in args else ["apply"])
    if command == "health_check":
        return migrate.main(["ping"])
    if command in ("rqworker", "workerprobe"):
        from cvat_twin import rq_commands

        return rq_commands.run(command, args)
    if command == "createsuperuser":
        from cvat_twin import createsuperuser

        return createsuperuser.main(args)
    print(f"Unknown command: {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
