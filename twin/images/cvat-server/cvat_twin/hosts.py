"""Django 4.2's Host header validation (django/http/request.py, django/utils/http.py),
as CVAT's CommonMiddleware applies it through request.get_host()."""

import re

# django.http.request.host_validation_re
host_validation_re = re.compile(r"^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9\.:]+\])(:[0-9]+)?$")


class DisallowedHost(Exception):
    """django.core.exceptions.DisallowedHost (a SuspiciousOperation -> 400)."""


def split_domain_port(host):
    """Return (domain, port); domain is '' when the host fails host_validation_re."""
    host = host.lower()
    if not host_validation_re.match(host):
        return "", ""
    if host[-1] == "]":
        # It's an IPv6 address without a port.
        return host, ""
    bits = host.rsplit(":", 1)
    domain, port = bits if len(bits) == 2 else (bits[0], "")
    # Remove a trailing dot (if present) from the domain.
    domain = domain[:-1] if domain.endswith(".") else domain
    return domain, port


def is_same_domain(host, pattern):
    if not pattern:
        return False
    pattern = pattern.lower()
    return (
        pattern[0] == "." and (host.endswith(pattern) or host == pattern[1:])
    ) or pattern == host


def validate_host(host, allowed_hosts):
    return any(pattern == "*" or is_same_domain(host, pattern) for pattern in allowed_hosts)


def get_host(raw_host, allowed_hosts):
    """request.get_host(): return the raw host if allowed, else raise DisallowedHost with
    Django's message."""
    domain, _port = split_domain_port(raw_host)
    if domain and validate_host(domain, allowed_hosts):
        return raw_host
    msg = f"Invalid HTTP_HOST header: {raw_host!r}."
    if domain:
        msg += f" You may need to add {domain!r} to ALLOWED_HOSTS."
    else:
        msg += " The domain name provided is not valid according to RFC 1034/1035."
    raise DisallowedHost(msg)
