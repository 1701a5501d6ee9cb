#!/usr/bin/env bash
# The CRIOBE install guide's own verification commands (docs/setup/installation/
# cvat-nuclio.md @ 11e8e0b: Steps 3, 5, 6, 7, 8 and "Post-Installation Verification"), written
# as the guide writes them (without -it: no terminal here), run against the stack as it is.
# Prints one line per command with its exit status; the count is the baseline's checks.
set -u
n=0; failed=0
run() {
  n=$((n + 1))
  if "$@" >/dev/null 2>&1; then echo "ok   $*"; else failed=$((failed + 1)); echo "FAIL $*"; fi
}
# Step 3: "Expected services running"
run docker ps --format "table {{.Names}}\t{{.Status}}\t{{.Ports}}"
# Step 5: Verify CVAT access
run curl -I http://localhost:8080/
# Step 6: Verify function deployment
run sh -c 'curl -s "http://localhost:8070/api/functions?namespace=cvat"'
run sh -c 'docker inspect nuclio-nuclio-pth-yolo-gridpose | grep -A5 Networks'
# Step 7: Test bridge service
run curl http://localhost:8000/health
run docker exec bridge curl -I http://cvat-server:8080/api/server/about
run docker exec bridge curl -I http://nuclio-nuclio-pth-yolo-gridpose:8080
# Step 8: Test network configuration
run docker exec cvat_server getent hosts bridge.gateway
run docker exec cvat_server curl http://bridge.gateway:8000/health
run sh -c 'docker inspect cvat_server | grep -A 5 ExtraHosts'
# Post-installation verification: service health checks
run curl http://localhost:8080/api/server/about
run curl http://localhost:8070/api/healthz
run curl http://localhost:8000/health
# Troubleshooting checks the guide gives for the same steps
run docker compose ps cvat_server
run docker network inspect cvat_cvat
run docker exec cvat_server curl http://localhost:8080
echo "commands $n failed $failed"
