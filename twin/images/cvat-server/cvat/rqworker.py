"""Worker classes named by CVAT's supervisord confs (`--worker-class cvat.rqworker.DefaultWorker`).

In CVAT v2.29.0 DefaultWorker is plain rq.Worker (the debugging workers only replace it when a
remote debugger is configured), so a job runs in a forked work horse, as here.
"""

from rq import Worker

DefaultWorker = Worker
