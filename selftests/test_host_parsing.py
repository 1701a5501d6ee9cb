"""Parsing of `ss -Hltnp`, which names the program holding a port."""

from criobe_verify.fixtures.host import parse_ss

SS = """LISTEN 0      4096         0.0.0.0:8080       0.0.0.0:*    users:(("docker-proxy",pid=4242,fd=4))
LISTEN 0      4096            [::]:8080          [::]:*    users:(("docker-proxy",pid=4250,fd=4))
LISTEN 0      5          127.0.0.1:8070       0.0.0.0:*    users:(("python3",pid=77,fd=3))
LISTEN 0      128                *:22               *:*
"""


def test_parse_ss_names_address_port_and_process():
    listeners = parse_ss(SS)
    assert [(lst.address, lst.port) for lst in listeners] == [
        ("0.0.0.0", 8080),
        ("::", 8080),
        ("127.0.0.1", 8070),
        ("*", 22),
    ]
    assert listeners[0].process == "docker-proxy pid=4242"
    assert listeners[2].is_loopback and not listeners[0].is_loopback
    assert listeners[3].process == ""
