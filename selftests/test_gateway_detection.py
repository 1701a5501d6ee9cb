"""The host gateway bridge.gateway must resolve to, by platform."""

from criobe_verify.gateway import detect_platform, expected_gateway_ip


def test_linux_uses_the_default_bridge_gateway():
    assert detect_platform("Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64") == "linux"
    assert expected_gateway_ip("linux", "172.17.0.1") == "172.17.0.1"
    # a daemon with another bip keeps its own gateway
    assert expected_gateway_ip("linux", "10.99.0.1") == "10.99.0.1"
    assert expected_gateway_ip("linux", None) == "172.17.0.1"


def test_wsl2_and_docker_desktop():
    assert detect_platform("Ubuntu 22.04", "5.15.90.1-microsoft-standard-WSL2") == "wsl2"
    assert expected_gateway_ip("wsl2") == "192.168.65.254"
    assert expected_gateway_ip("macos") == "192.168.65.1"
