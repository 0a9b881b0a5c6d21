#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (from Debian's packages when missing, and the Python `marathon` client from
# PyPI), then `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)   # test tasks run `python3 -m http.server`
command -v setsid >/dev/null 2>&1 || need+=(util-linux) # mesos-local starts executors in their own session
command -v unzip >/dev/null 2>&1 || need+=(unzip)       # mesos-local's fetcher extracts .zip URIs as Mesos's does
command -v xz >/dev/null 2>&1 || need+=(xz-utils)       # ...and tar extracts .tar.xz with it
command -v curl >/dev/null 2>&1 || need+=(curl)         # the router's HTTP/2 tests run curl --http2-prior-knowledge
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip) # installs the Python `marathon` client below
# The HA tests run a real ZooKeeper (Debian's package, run directly with java; a missing one fails them).
{ [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; } || need+=(zookeeper)
# The web UI's end-to-end tests (tests/tests/e2e/ui.rs) drive a headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

# tests/tests/e2e/python_client.rs drives Baton with the Python `marathon` client from PyPI.
# (A Debian python3 refuses system-wide installs (PEP 668): then per user.)
if ! python3 -c 'import marathon' >/dev/null 2>&1; then
  python3 -m pip install --quiet 'marathon>=0.13' \
    || python3 -m pip install --quiet --user --break-system-packages 'marathon>=0.13'
fi

# The end-to-end tests mostly wait (for offers, launches, health checks,
# ZooKeeper): four at a time keep two cores busy. RUST_TEST_THREADS overrides.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
exec cargo test --workspace --locked "$@"
