"""`criobe-verify`: run the suite with the report options set.

    criobe-verify                          # check the running stack (profiles/criobe.toml)
    criobe-verify --stack twin             # build and start the CI twin, check it, tear down
    criobe-verify --phase preinstall       # before installing
    criobe-verify --reports DIR -- -k ports   # anything after -- goes to pytest
    criobe-verify cleanup [--dry-run]      # what interrupted runs left in CVAT
    criobe-verify baseline before/ [--baseline-key FILE] [--overwrite] [run options]
                                           # a run that also writes before/baseline.json
    criobe-verify compare before/ after/ [--html PATH] [--profile FILE]   # no stack needed
    criobe-verify github-summary reports/summary.json   # job summary and annotations (Actions)

Writes DIR/report.html (self-contained), DIR/junit.xml and DIR/summary.json (default
DIR: ./reports). The exit code is pytest's, or the verdict's (README: exit codes); compare's:
criobe_verify/compare.py.

Bad input (an option, an environment variable, the profile, a file) stops the run before
anything runs, with one line on stderr and exit code 4, and creates nothing (not even DIR):

    criobe-verify: --layer nosuchlayer: unknown layer; expected one of host, …; fix: …

It runs from any folder, from a checkout or an installed wheel alike: relative paths
(`--profile lab.toml`, `--sample-image`, `--reports`, `--stack-dir`) are the caller's, and
pytest is told where the suite is (its checks, its settings, its rootdir) instead of finding a
configuration in the caller's folder.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from criobe_verify.bad_input import EXIT_USAGE, PROG, InputError, did_you_mean
from criobe_verify.paths import CHECKS_DIR, PYTEST_INI, SUITE_ROOT


def report_args(reports: Path) -> list[str]:
    return [
        f"--html={reports / 'report.html'}",
        "--self-contained-html",
        f"--junitxml={reports / 'junit.xml'}",
        f"--summary-json={reports / 'summary.json'}",
    ]


# The suite's options that take a value. pytest reads its command line once before the
# suite's conftest is loaded, and then takes the value of `--stack-dir PATH` for a test path
# (rootdir PATH, no conftest, "unrecognized arguments"): pass them as `--opt=value`.
VALUE_OPTIONS = (
    "--stack", "--stack-dir", "--profile", "--phase", "--layer", "--require", "--gateway-ip",
    "--stack-timeout", "--summary-json", "--sample-image", "--ground-truth", "--budgets",
    "--record-baseline", "--baseline-key",
)  # fmt: skip


def join_option_values(args: list[str]) -> list[str]:
    """`--stack-dir PATH` → `--stack-dir=PATH` for the suite's own options.

    >>> join_option_values(["--stack", "up", "--stack-dir", "/srv/cvat", "-k", "ports"])
    ['--stack=up', '--stack-dir=/srv/cvat', '-k', 'ports']
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in VALUE_OPTIONS and i + 1 < len(args):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def suite_args() -> list[str]:
    """Where the suite is, whatever the caller's folder: its settings (`-c`, so a pytest.ini
    of the caller's is not read), its rootdir (node ids read tests/test_<layer>.py::…) and
    its checks (the plugin then knows the session is the suite's)."""
    # --assert=plain: checks state their findings with expect()/fail() (a selftest keeps bare
    # asserts out of them), so pytest need not rewrite the plugin's ~60 modules on every start,
    # which it cannot cache where bytecode is not written (PYTHONDONTWRITEBYTECODE): 0.4-0.6 s.
    return [
        "-p", "no:cacheprovider", "-c", str(PYTEST_INI), f"--rootdir={SUITE_ROOT}",
        "--assert=plain",
    ]  # fmt: skip


_ARGPARSE = re.compile(r"^(?:argument (?P<option>\S+): |unrecognized arguments: (?P<extra>\S+))")


def one_line(exc: pytest.UsageError) -> str:
    """A usage error as one line: criobe-verify's own are one already; pytest's and
    argparse's carry the usage text, the ini file and the rootdir around the message.

    >>> one_line(pytest.UsageError("usage: x [options]\\nx: error: unrecognized arguments: --stak\\n  rootdir: /"))
    "criobe-verify: --stak: unrecognized option; expected one of criobe-verify's options (criobe-verify --help); fix: did you mean --stack?"
    """
    text = "\n".join(str(a) for a in exc.args)
    if text.startswith(f"{PROG}: ") and "\n" not in text:
        return text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line.split(": error: ", 1)[1] for line in lines if ": error: " in line), None)
    said = said or next((line for line in lines if not line.startswith("usage:")), "usage error")
    m = _ARGPARSE.match(said)
    if m and m["extra"]:
        from criobe_verify.plugin import OPTION_NAMES

        return InputError(
            m["extra"],
            "unrecognized option",
            f"one of {PROG}'s options ({PROG} --help)",
            did_you_mean(m["extra"], OPTION_NAMES) or f"{PROG} --help lists them",
        ).line
    if m:
        return InputError(m["option"], said[m.end() :], fix=f"{PROG} --help").line
    return InputError(said.split(": ", 1)[0], said.split(": ", 1)[-1], fix=f"{PROG} --help").line


class OneLineUsage:
    """pytest prints a usage error as 'ERROR: <message>' and a blank line, argparse's with the
    usage text above it: the CLI prints one line, and returns pytest's usage exit code."""

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_parse(self, pluginmanager, args):
        try:
            return (yield)
        except pytest.UsageError as exc:
            print(one_line(exc), file=sys.stderr)
            raise pytest.UsageError() from None  # already said; pytest prints nothing more

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_main(self, config):
        try:
            return (yield)
        except pytest.UsageError as exc:
            print(one_line(exc), file=sys.stderr)
            return pytest.ExitCode.USAGE_ERROR


def _reports_option(args: list[str]) -> Path:
    """Take --reports DIR (or --reports=DIR) out of args; the folder, checked, not made."""
    from criobe_verify.input_files import reports_folder

    return reports_folder(
        _take_value(args, "--reports", "a directory", "DIR", "reports") or "reports"
    )


def _take_value(args: list[str], option: str, what: str, metavar: str, example: str) -> str | None:
    """Remove `option VALUE` or `option=VALUE` from args; its value (None if absent). An
    option with no value (the next word is another option) is bad input, in one line.

    >>> args = ["--reports", "out", "-k", "ports"]
    >>> _take_value(args, "--reports", "a directory", "DIR", "reports"), args
    ('out', ['-k', 'ports'])
    >>> _take_value(["--reports", "-k"], "--reports", "a directory", "DIR", "reports")
    Traceback (most recent call last):
    ...
    criobe_verify.bad_input.InputError: --reports: needs a directory; expected --reports DIR; fix: --reports reports
    """
    for i, arg in enumerate(args):
        if arg == option or arg.startswith(option + "="):
            value = arg.partition("=")[2] if "=" in arg else None
            if value is None and i + 1 < len(args) and not args[i + 1].startswith("-"):
                value = args[i + 1]
            if not value:
                raise InputError(
                    option, f"needs {what}", f"{option} {metavar}", f"{option} {example}"
                )
            del args[i : i + (1 if "=" in arg else 2)]
            return value
    return None


def baseline_args(args: list[str]) -> list[str]:
    """`baseline DIR [--baseline-key FILE] [--overwrite] …` → the run's own arguments, with
    DIR and the key made absolute (the caller's) and checked before the run: a baseline that
    could not be written should not cost a run."""
    from criobe_verify.baseline import FILE
    from criobe_verify.secret_digest import load_or_create_key, refuse_inside, resolve_key_path

    if not args or args[0].startswith("-"):
        raise InputError(
            "baseline", "needs a folder", "criobe-verify baseline DIR [run options]",
            "criobe-verify baseline before-upgrade/",
        )  # fmt: skip
    folder, rest = Path(args[0]).resolve(), args[1:]
    overwrite = "--overwrite" in rest
    rest = [a for a in rest if a != "--overwrite"]
    if (folder / FILE).exists() and not overwrite:
        raise InputError(str(folder), "holds a baseline already", "a new folder",
                         "another folder, or --overwrite")  # fmt: skip
    key = resolve_key_path(
        _take_value(
            rest, "--baseline-key", "a file", "FILE", "~/.config/criobe-verify/baseline.key"
        )
    )
    refuse_inside(key, folder)  # KeyFileError: an InputError of its own
    load_or_create_key(key)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(str(folder), f"cannot make the folder ({exc.strerror})",
                         "a writable path", "another folder") from None  # fmt: skip
    return [*rest, f"--record-baseline={folder}", f"--baseline-key={key}"]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: pytest then finishes the session, and the verdict,
    report.html, junit.xml and summary.json are written ("incomplete: interrupted").

    Python's default for SIGTERM is to die at once, writing nothing; a CI runner stops a job
    that was cancelled or ran out of time with SIGINT, then SIGTERM, then SIGKILL seconds
    later (GitHub Actions: 7.5 s, then 2.5 s), and a program a non-interactive shell starts
    in the background (as the workflow does, to pass the signals on) ignores SIGINT. Only the
    first SIGTERM interrupts: a second one, while the reports are written, must not cut them
    short.
    """
    received = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:
            print(f"{PROG}: SIGTERM again: still writing the reports", file=sys.stderr)
            return
        received = True
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cleanup"]:
        from criobe_verify.cleanup import main as cleanup

        return cleanup(args[1:])
    if args[:1] == ["profile-schema"]:
        from criobe_verify.profile_schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    if args[:1] == ["compare"]:
        from criobe_verify.compare import main as compare

        return compare(args[1:])
    if args[:1] == ["github-summary"]:
        from criobe_verify.github import main as github_summary

        return github_summary(args[1:])
    try:
        if args[:1] == ["baseline"]:
            args = baseline_args(args[1:])
        reports = _reports_option(args)
    except InputError as exc:
        print(exc.line, file=sys.stderr)
        return EXIT_USAGE
    if "--" in args:
        args.remove("--")
    args = join_option_values(args)
    # The reports' folder is made by the report plugins once every input is valid.
    with sigterm_as_interrupt():
        return int(
            pytest.main(
                [*suite_args(), *report_args(reports), *args, str(CHECKS_DIR)],
                plugins=[OneLineUsage()],
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
