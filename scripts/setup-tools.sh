#!/usr/bin/env bash
# Installs the reference etcd tools the compatibility tests use: Debian's etcd-client (etcdctl)
# and etcd-server (etcd). Debian/Ubuntu only; packages already installed are left alone.
set -euo pipefail

packages=(etcd-client etcd-server)

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-tools: apt-get not found; install etcdctl and etcd (3.4 or later) yourself" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    echo "setup-tools: $package already installed ($(dpkg-query -W -f='${Version}' "$package"))"
  else
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup-tools: not root and sudo not found; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi

echo "setup-tools: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"

# etcd-server's package starts an etcd service on 2379 where systemd runs; the tests start their
# own etcd, so stop the one this script just installed rather than leave it holding the port.
if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
  echo "setup-tools: stopped and disabled the etcd system service (start it with: systemctl enable --now etcd)"
fi

echo "setup-tools: $(etcdctl version | head -n 1); $(etcd --version | head -n 1)"
