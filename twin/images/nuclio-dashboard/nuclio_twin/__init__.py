"""criobe-verify twin of the Nuclio 1.13.0 dashboard (local platform)."""

VERSION = {
    "label": "1.13.0",
    "gitCommit": "c4422eb772781fb50fbf017698aae96199d81388",
    "os": "linux",
    "arch": "amd64",
}
DEFAULT_NAMESPACE = "nuclio"
