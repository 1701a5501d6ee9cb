"""criobe-verify: checks that a CRIOBE annotation stack (CVAT 2.29.0, Nuclio, bridge) works.

Its own files (checks, profiles, the sample quadrat, the twin) are found through
criobe_verify.paths, in a checkout and in an installed wheel alike.

PYTEST_DONT_REWRITE: the CLI imports this package before pytest loads it as the pytest11
plugin; its submodules (the fixtures) are still rewritten when pytest imports them.
"""
