"""The twin of CVAT v2.29.0's lambda manager (cvat/apps/lambda_manager): functions listed by the
Nuclio dashboard, online calls from cvat_server, auto-annotation requests run on RQ queue
`annotation` by cvat_worker_annotation.

    gateway.py    the dashboard (GET /api/functions[/<name>]) and the functions
                  (POST http://host.docker.internal:<status.httpPort>/), through `requests`
    function.py   LambdaFunction: the dashboard entry parsed, to_dict(), invoke() (label
                  mapping, frame checks, payload, filtering of the function's answer)
    frames.py     the target task's labels and original frame bytes, from cvat_db
    queue.py      LambdaQueue: enqueue (409 on a running request), fetch, list; FunctionCall dicts
    worker.py     the RQ job: cleanup, one invocation per frame, shapes written with source auto

The HTTP views are cvat_twin.api.lambda_api.
"""
