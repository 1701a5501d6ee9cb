"""The part of CVAT's `cvat` package that its supervisord confs name (criobe-verify twin)."""
