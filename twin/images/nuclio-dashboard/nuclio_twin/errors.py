"""Nuclio's errors: a status code, a root cause and the messages wrapped around it.

    err = NuclioError(412, "Project does not exist").wrap("Project existence validation failed")
    err.status                  # 412
    err.body()                  # {"error": "Project does not exist", "errorStackTrace": "..."}

The dashboard's restful layer (pkg/restful/resource.go, writeErrorReason) answers an error with
{"error": <root cause>, "errorStackTrace": <errors.PrintErrorStack>}; the status is the first
status code found walking the chain (pkg/common/errors.go), 500 when there is none.
"""


class NuclioError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.root = message
        self.chain = [message]  # root first, outermost last

    def wrap(self, message):
        self.chain.append(message)
        return self

    @property
    def outer(self):
        return self.chain[-1]

    def stack(self):
        # The layout of nuclio/errors' PrintErrorStack: the root, then the call stack from the
        # outermost wrap down to the root. The twin has no Go file:line sites to print.
        lines = [f"\nError - {self.root}", "", "Call stack:"]
        lines += list(reversed(self.chain))
        return "\n".join(lines) + "\n"

    def body(self):
        return {"error": self.root, "errorStackTrace": self.stack()}


def bad_request(message):
    return NuclioError(400, message)


def not_found(message):
    return NuclioError(404, message)


def conflict(message):
    return NuclioError(409, message)


def precondition_failed(message):
    return NuclioError(412, message)


def internal(message):
    return NuclioError(500, message)
