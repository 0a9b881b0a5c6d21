#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (from Debian's packages when missing), then `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)   # test tasks run `python3 -m http.server`
command -v setsid >/dev/null 2>&1 || need+=(util-linux) # mesos-local starts executors in their own session
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

exec cargo test --workspace --locked "$@"
