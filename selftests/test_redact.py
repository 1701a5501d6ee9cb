"""No password, token or webhook secret reaches a report, a log or a failure message."""

from __future__ import annotations

from criobe_verify.redact import MASK, Redactor, parse_env_lines


def test_learnt_secret_values_are_masked_anywhere():
    r = Redactor()
    r.add_environment(parse_env_lines(["CVAT_PWD=Coral-Reef-2024!", "CVAT_USER=admin", "# x=y"]))
    out = r("login admin:Coral-Reef-2024! failed; env was CVAT_USER=admin")
    assert "Coral-Reef-2024!" not in out and "admin" in out


def test_unseen_secrets_in_key_value_pairs_are_masked():
    r = Redactor()
    for text, secret in [
        ("CVAT_PASSWORD=hunter22 CVAT_URL=x", "hunter22"),
        ("WEBHOOK_SECRET: 'abcdef123'", "abcdef123"),
        ('{"DJANGO_SUPERUSER_PASSWORD": "zz9plural"}', None),
        ("Authorization: Token 0123456789abcdef", "0123456789abcdef"),
    ]:
        out = r(text)
        if secret:
            assert secret not in out and MASK in out, out


def test_json_env_values_are_masked_by_learnt_value():
    r = Redactor()
    r.add_environment({"DJANGO_SUPERUSER_PASSWORD": "zz9plural"})
    assert "zz9plural" not in r('{"DJANGO_SUPERUSER_PASSWORD": "zz9plural"}')


def test_harmless_text_is_untouched():
    r = Redactor()
    text = (
        "cvat_server: status 'exited' (exit code 137); SMOKESCREEN_OPTS=--allow-address=172.17.0.1"
    )
    assert r(text) == text


def test_an_already_masked_value_keeps_the_text_after_it():
    r = Redactor()
    text = "(CVAT_USER='admin', CVAT_PWD=[REDACTED]): POST /api/auth/login answered 400"
    assert r(text) == text


def test_a_password_inside_a_url_is_masked_and_the_rest_kept():
    r = Redactor()
    for text, kept in [
        ("cvat_url: got 'http://admin:Coral-Reef-2024!@localhost:8080'", "http://admin:"),
        ("CRIOBE_STACK_HOST=ssh://lab:pa55word@gpu-host", "@gpu-host"),
        ("DOCKER_HOST=tcp://u:p4ss@10.0.0.5:2376 (ssh://plain@host stays)", "ssh://plain@host"),
    ]:
        out = r(text)
        assert MASK in out and kept in out, out
        assert not any(s in out for s in ("Coral-Reef-2024!", "pa55word", "p4ss")), out
