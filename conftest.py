"""The checkout's conftest: nothing to do.

The suite is a pytest plugin registered through its `pytest11` entry point
(criobe_verify/plugin.py), loaded in the checkout and from an installed wheel alike, so its
options and fixtures are not declared here. Run from the checkout after `pip install -e .`:

    pytest --stack twin                  # the suite's checks in tests/ against the CI twin
    pytest --profile profiles/criobe.toml
    pytest --phase preinstall
"""
