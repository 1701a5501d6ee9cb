"""django.contrib.auth's createsuperuser (Django 4.2), against the twin's user table."""

import argparse
import getpass
import os
import sys

from . import auth, db


class CommandError(Exception):
    pass


def _username_taken(cur, username):
    cur.execute("SELECT 1 FROM twin_user WHERE username = %s", (username,))
    return cur.fetchone() is not None


def _validate_password(password, username):
    errors = []
    if len(password) < 8:
        errors.append("This password is too short. It must contain at least 8 characters.")
    if password.isdigit():
        errors.append("This password is entirely numeric.")
    if username and password.lower() == username.lower():
        errors.append("The password is too similar to the username.")
    return errors


def _noinput(cur, username, email):
    username = username or os.environ.get("DJANGO_SUPERUSER_USERNAME")
    if not username:
        raise CommandError("You must use --username with --noinput.")
    if _username_taken(cur, username):
        raise CommandError("Error: That username is already taken.")
    email = email if email is not None else os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
    password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
    if password is None:
        password = "!" + os.urandom(20).hex()  # an unusable password, as Django sets
    return username, email, password


def _interactive(cur, username, email):
    default = os.environ.get("USER") or getpass.getuser()
    if _username_taken(cur, default):
        default = ""
    while not username:
        prompt = f"Username (leave blank to use '{default}'): " if default else "Username: "
        value = input(prompt).strip() or default
        if not value:
            sys.stderr.write("Error: This field cannot be blank.\n")
            continue
        if _username_taken(cur, value):
            sys.stderr.write("Error: That username is already taken.\n")
            continue
        username = value
    if email is None:
        email = input("Email address: ").strip()
    while True:
        password = getpass.getpass()
        again = getpass.getpass("Password (again): ")
        if password != again:
            sys.stderr.write("Error: Your passwords didn't match.\n")
            continue
        if not password.strip():
            sys.stderr.write("Error: Blank passwords aren't allowed.\n")
            continue
        errors = _validate_password(password, username)
        if errors:
            sys.stderr.write("\n".join(errors) + "\n")
            answer = input("Bypass password validation and create user anyway? [y/N]: ")
            if answer.lower() != "y":
                continue
        return username, email, password


def main(argv):
    parser = argparse.ArgumentParser(prog="manage.py createsuperuser")
    parser.add_argument("--noinput", "--no-input", action="store_true")
    parser.add_argument("--username")
    parser.add_argument("--email")
    parser.add_argument("--database")
    args = parser.parse_args(argv)
    if not args.noinput and not sys.stdin.isatty():
        # django.contrib.auth.management.commands.createsuperuser: NotRunningInTTYException
        sys.stdout.write(
            "Superuser creation skipped due to not running in a TTY. You can run "
            "`manage.py createsuperuser` in your project to create one manually.\n"
        )
        return 0
    try:
        with db.transaction() as cur:
            if args.noinput:
                username, email, password = _noinput(cur, args.username, args.email)
            else:
                if args.username and _username_taken(cur, args.username):
                    raise CommandError("Error: That username is already taken.")
                username, email, password = _interactive(cur, args.username, args.email)
            user = auth.create_user(cur, username, password, email=email or "", superuser=True)
            if (
                password.startswith("!")
                and args.noinput
                and not os.environ.get("DJANGO_SUPERUSER_PASSWORD")
            ):
                cur.execute("UPDATE twin_user SET password = %s WHERE id = %s",
                            (password, user["id"]))  # fmt: skip
    except CommandError as exc:
        sys.stderr.write(f"CommandError: {exc}\n")
        return 1
    except (KeyboardInterrupt, EOFError):
        sys.stderr.write("\nOperation cancelled.\n")
        return 1
    sys.stdout.write("Superuser created successfully.\n")
    return 0
