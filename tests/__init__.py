"""The suite's checks, one module per layer (installed as `criobe_verify.tests`).

criobe-verify --layer gateway                          # from anywhere, once installed
pytest --pyargs criobe_verify.tests --profile lab.toml # beside a lab's own tests
"""
