"""Helpers of the CVAT resources: the bridge's credential names and the generated image."""

from PIL import Image

from criobe_verify.redact import REDACTOR
from criobe_verify.resources.bridge import credentials_from_env
from criobe_verify.resources.scratch import tiny_png


def test_either_documented_credential_set_is_read_and_learnt_as_secret():
    a = credentials_from_env({"CVAT_USER": "admin", "CVAT_PWD": "Set-A-pass-1"})
    b = credentials_from_env({"CVAT_USERNAME": "lab", "CVAT_PASSWORD": "Set-B-pass-2"})
    assert (a.username, a.password_var) == ("admin", "CVAT_PWD")
    assert (b.username, b.password_var) == ("lab", "CVAT_PASSWORD")
    assert "Set-A-pass-1" not in repr(a)
    assert REDACTOR("pw Set-B-pass-2") == "pw [REDACTED]"
    assert credentials_from_env({"CVAT_USER": "admin"}) is None


def test_tiny_png_is_a_valid_image(tmp_path):
    path = tmp_path / "q.png"
    path.write_bytes(tiny_png(64, 48))
    with Image.open(path) as img:
        img.load()
        assert img.size == (64, 48) and img.mode == "RGB"
