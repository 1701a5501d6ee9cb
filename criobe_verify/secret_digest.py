"""Secrets in a baseline: an HMAC-SHA256 under a key the lab keeps outside the baseline folder,
never the value, so two baselines tell "CVAT_PWD changed" and nothing more.

    key_path = resolve_key_path(None)          # $CRIOBE_VERIFY_BASELINE_KEY, else
                                               # $XDG_CONFIG_HOME/criobe-verify/baseline.key
    digest = SecretDigest(load_or_create_key(key_path))
    digest.of("s3cret!")                       # 'hmac-sha256:…' (64 hex digits)

    >>> d = SecretDigest(b"k" * 32)
    >>> d.of("s3cret!") == d.of("s3cret!"), d.of("s3cret!") == d.of("s3cret?")
    (True, False)
    >>> d.of("s3cret!").startswith("hmac-sha256:"), len(d.key_id)
    (True, 16)

Why a keyed hash: a plain SHA-256 of a short password is found by guessing in seconds; without
the key, a baseline copied to a ticket or a shared drive gives nothing to guess against. The
key is created on first use (32 random bytes, hex, mode 0600, its folder 0700); a key readable
by others, an empty one, or one inside the baseline folder is refused. `key_id` (an HMAC of a
fixed text) names the key in each baseline, so `compare` can say that two baselines were
digested with different keys instead of calling every secret changed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from criobe_verify.bad_input import InputError

KEY_ENV = "CRIOBE_VERIFY_BASELINE_KEY"
PREFIX = "hmac-sha256:"


class KeyFileError(InputError):
    """A key file that cannot be used: one line, the path, what is wrong, the fix."""


def default_key_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "criobe-verify" / "baseline.key"


def resolve_key_path(option: str | None) -> Path:
    """--baseline-key, else $CRIOBE_VERIFY_BASELINE_KEY, else the XDG default; absolute,
    relative to the caller's folder."""
    chosen = option or os.environ.get(KEY_ENV) or default_key_path()
    return Path(chosen).expanduser().resolve()


def refuse_inside(key_path: Path, folder: Path) -> None:
    """A key inside the baseline folder would travel with the baselines it protects."""
    folder = folder.resolve()
    if key_path == folder or folder in key_path.parents:
        raise KeyFileError(
            str(key_path),
            f"the baseline key is inside the baseline folder {folder}",
            "it outside (it would travel with the digests it protects)",
            f"--baseline-key or ${KEY_ENV} naming a file elsewhere (default {default_key_path()})",
        )


def load_or_create_key(path: Path) -> bytes:
    """The key at `path`, created 0600 (in a 0700 folder) when missing."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run created it meanwhile: read that one
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    try:
        mode = path.stat().st_mode
        key = path.read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(
            str(path),
            f"cannot read the baseline key ({exc.strerror})",
            "a readable file",
            f"--baseline-key or ${KEY_ENV} naming a key file of yours",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            str(path),
            f"the baseline key is readable by others (mode {stat.S_IMODE(mode):o})",
            "600",
            f"chmod 600 {path}",
        )
    if len(key) < 16:
        raise KeyFileError(
            str(path),
            "the baseline key is empty or shorter than 16 bytes",
            "the file criobe-verify creates",
            "remove it (a new one is made; earlier baselines' secrets then compare as "
            "'not comparable')",
        )
    return key


class SecretDigest:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def of(self, value: str) -> str:
        return PREFIX + hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    @property
    def key_id(self) -> str:
        """Names the key without revealing it: baselines with the same key_id compare."""
        return self.of("criobe-verify baseline key id").removeprefix(PREFIX)[:16]
