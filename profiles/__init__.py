"""Profiles shipped with the suite (data, installed as `criobe_verify.profiles`): criobe.toml
for the real stack, twin.toml for the CI twin. Read with importlib.resources, never imported."""
