#!/usr/bin/env bash
# Installs the Debian packages the e2e suite needs (run as root, e.g. from .ci/run); `npm test`
# needs none. chromium is the browser the web UI checks drive through playwright-core;
# postgresql holds the shared state of checks 70-73 (e2e/shared-state.ts starts its own server);
# podman (4.3 in bookworm) pulls through the mirrors with the generated registries.conf.d drop-in (check 34).
# redis-server is the cluster's blob-descriptor cache in the swarm suite (e2e/swarm.ts starts its own).
# Idempotent: apt is only touched when a package is missing. Starts no engine:
# e2e/engine.ts starts a private dockerd for each run.
set -euo pipefail

packages=(docker.io containerd debootstrap skopeo curl openssl ca-certificates iproute2 chromium postgresql podman redis-server)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host.sh: must run as root" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg -s "$p" >/dev/null 2>&1; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-host.sh: all packages present (${packages[*]})"
  exit 0
fi

echo "setup-host.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# docker.io's postinst would start the system dockerd on /var/run/docker.sock, postgresql's its
# cluster on port 5432, redis-server's on 6379: services the suite must not create. policy-rc.d exit 101 is Debian's
# "do not start services".
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=yes
fi
cleanup() { if [ "$own_policy" = yes ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -q
# --no-install-recommends: docker.io recommends needrestart, git, cgroupfs-mount...;
# the private engine needs none of them.
apt-get install -y -q --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || { echo "setup-host.sh: $p still missing" >&2; exit 1; }
done
echo "setup-host.sh: done"
