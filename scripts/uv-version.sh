# shellcheck shell=bash disable=SC2034  # sourced: the scripts that source it read UV_VERSION
# The uv release that writes and reads uv.lock, sourced by bootstrap.sh and lowest-deps.sh. One
# release everywhere: a newer uv may rewrite the lock (its format has revisions) where an older
# one refuses it, and `uv lock --check` compares with what this release would resolve.
# Upgrading: change it here, then `uv lock` with the new release and commit both.
UV_VERSION=0.13.9
