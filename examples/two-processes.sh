#!/usr/bin/env bash
# Runs mesos-local on its own and Baton against it over real HTTP, the way
# Baton runs against a real Mesos master. Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
data=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT
./target/release/mesos-local --port 5050 --agents 3 --racks 2 --work_dir "$data/mesos" &
until curl -fs localhost:5050/master/state >/dev/null; do sleep 0.2; done
./target/release/baton --master http://127.0.0.1:5050 --data_dir "$data/baton" --http_port 8080 &
sleep 2
curl -s localhost:5050/master/state | python3 -c 'import json,sys; s=json.load(sys.stdin); print("frameworks:", [f["name"] for f in s["frameworks"]], "agents:", [a["hostname"] for a in s["slaves"]])'
wait
