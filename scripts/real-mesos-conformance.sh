#!/usr/bin/env bash
# shellcheck disable=SC2317 # many functions run only through wait_for, a trap or a subshell
# Conformance checks of Baton against a REAL Apache Mesos 1.12 (not mesos-local).
#
# An optional developer tool: nothing in the test suite needs it, and it needs
# the prebuilt Mesos tarball described in ../shared/real-mesos/README.md (which
# a fresh clone does not have).
#
#   scripts/real-mesos-conformance.sh [--tarball PATH] [--baton TARGET_DIR] [--keep] [scenario...]
#
#   --tarball PATH    Mesos 1.12 tarball (default: ../shared/real-mesos/mesos-1.12.0-debian12-x86_64.tar.gz)
#   --baton DIR       directory holding the `baton` and `baton-executor` binaries
#                     (default: target/debug; build them first with `cargo build --bins`)
#   --keep            keep the whole temporary directory (default: only the logs
#                     are kept, and only when a scenario failed)
#   scenario          max-over-zero | group-by-rack-outage | zk-master-failover |
#                     executor-fetch-failure | framework-auth | role-acl |
#                     memory-limit | persistent-volume | resident-app | pod |
#                     resident-pod
#                     (default: all eleven)
#
# framework-auth and role-acl run a master with HTTP framework authentication
# (--authenticate_http_frameworks, --credentials) and, for role-acl, a
# register_frameworks ACL (--acls); each also sends the master a SUBSCRIBE of
# its own with curl and prints exactly what it answered, next to what
# mesos-local answers. There is no scenario of a master over TLS: this Mesos
# build has no SSL support (libprocess on libev, without --enable-ssl), so
# LIBPROCESS_SSL_ENABLED=true is ignored and the master speaks plain HTTP.
#
# memory-limit runs an agent with the cgroups isolators (--launcher=linux
# --isolation=cgroups/cpu,cgroups/mem, cgroups under a root of its own, removed
# afterwards): it needs root and cgroup v1 controllers, as this machine has.
#
# persistent-volume needs no Baton: a small v1 scheduler (Python 3, written
# out by the script) reserves resources and creates a volume, writes into
# it from one task and reads it back from another, tries five invalid
# operations, then destroys and unreserves; it does this once without and
# once with RESERVATION_REFINEMENT, against a real master + agent and then
# against `mesos-local` (from --baton DIR, `cargo build -p mesos-local`),
# and the scenario passes when both give the same FACT lines.
#
# resident-app runs Baton (--mesos_role '*,db') with a resident app: role
# db, one persistent volume at data, a command appending $MESOS_TASK_ID to
# data/history. It waits for the task, kills it through Baton's API
# (DELETE /v2/apps/db/tasks/<id>, no wipe), waits for the next incarnation,
# reads data/history (both ids, through the sandbox's link to the volume:
# the agent's /files/read refuses a link out of the sandbox, which is
# recorded too), checks the reservation of role db in /master/state and
# /master/slaves, deletes the app and waits for the reservation and the
# volume to be gone. It does this twice per cluster, with a fresh Baton
# each time (without, then with --mesos_authentication_principal), against
# a real master + agent and then against `mesos-local`; it passes when Baton
# did all that on the real master, the master logged no dropped operation,
# and both give the same FACT lines.
#
# pod runs Baton (--pod_executor default) against a real master + agent
# whose agent has what the default executor's nested containers and a pod's
# ephemeral volume need (--launcher=posix --isolation=filesystem/posix,
# volume/sandbox_path,posix/cpu,posix/mem: the SANDBOX_PATH volume is a
# symlink into the executor's sandbox; --launcher=linux with
# filesystem/linux,volume/sandbox_path,cgroups/cpu,cgroups/mem bind-mounts
# it and gives the same facts, but leaves its work_dir mounted, which this
# script does not undo): a pod of two containers sharing the volume,
# one writing a page, one serving it with python3 -m http.server under an
# HTTP health check, STABLE, scaled to 2, deleted with no task, executor
# or process left; then once more with --pod_executor baton (baton-executor
# as a CUSTOM executor receiving the LAUNCH_GROUP). Then the same against
# `mesos-local`; it passes when both give the same FACT lines.
#
# resident-pod runs Baton (--mesos_role '*,db', the default executor)
# against a real master + agent with the pod scenario's agent flags and
# disk: a resident pod /db/store (role db, a 16 MB persistent volume data
# mounted by its one container, which appends $MESOS_TASK_ID to
# data/history after copying it to `seen`). It records the reservation and
# volume the first LAUNCH_GROUP made, where `data` is in the executor's
# sandbox and in the container's (found by the working directory of the
# container's process), then relaunches the instance in place twice (a new
# version by PUT, then DELETE ::instances/<id>), checks that the same
# agent and volume served all three incarnations, deletes the pod and waits
# for the reservation and the volume to be gone. Then the same against
# `mesos-local`; it passes when Baton did all that on the real master, the
# real master and agent logged no drop, invalid operation or failed
# launch, and both give the same FACT lines.
#
# Each scenario runs against a fresh Mesos master (two for the ZooKeeper one),
# fresh agents and a fresh Baton (role-acl: one for each --mesos_role it
# tries, one after the other), every one of them on 127.0.0.1 with free
# ports and its own directory under one temporary directory. Each prints one
# `PASS <scenario>: ...` or `FAIL <scenario>: ...` line with what it measured;
# the script exits non-zero if any failed.
#
# Cleanup: every process the script starts runs in its own session (setsid)
# with its working directory under the temporary directory, and Mesos starts
# executors and tasks with their working directory in an agent's sandbox, also
# under it. So "every process whose cwd or environment points into the
# temporary directory" is exactly what the script started, tasks included; a
# scenario kills those of its own directory when it ends, and an EXIT trap
# kills whatever is left (also on Ctrl-C), then checks that nothing survived.
#
# Every wait is a bounded poll (`wait_for`, or a measuring loop with its own
# deadline), never a fixed sleep.
#
# Needs: bash >= 5, curl, jq, coreutils, util-linux (setsid); Debian 12's
# runtime libraries of the Mesos build and, for zk-master-failover, the
# `zookeeper` package (all installed with apt-get when missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

ALL_SCENARIOS=(max-over-zero group-by-rack-outage zk-master-failover executor-fetch-failure framework-auth role-acl memory-limit persistent-volume resident-app pod resident-pod)

# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

usage() {
  sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

TARBALL="$REPO/../shared/real-mesos/mesos-1.12.0-debian12-x86_64.tar.gz"
BATON_DIR="$REPO/target/debug"
KEEP=0
SCENARIOS=()
while (($#)); do
  case "$1" in
    --tarball) TARBALL=${2:?--tarball needs a path}; shift 2 ;;
    --tarball=*) TARBALL=${1#*=}; shift ;;
    --baton) BATON_DIR=${2:?--baton needs a directory}; shift 2 ;;
    --baton=*) BATON_DIR=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      if [[ " ${ALL_SCENARIOS[*]} " != *" $1 "* ]]; then
        echo "unknown scenario: $1 (one of: ${ALL_SCENARIOS[*]})" >&2
        exit 2
      fi
      SCENARIOS+=("$1"); shift ;;
  esac
done
((${#SCENARIOS[@]})) || SCENARIOS=("${ALL_SCENARIOS[@]}")

TARBALL=$(realpath -e "$TARBALL") || { echo "no Mesos tarball at $TARBALL (--tarball)" >&2; exit 2; }
BATON_DIR=$(realpath -e "$BATON_DIR") || { echo "no directory $BATON_DIR (--baton)" >&2; exit 2; }
BATON_BIN=$BATON_DIR/baton
EXECUTOR_BIN=$BATON_DIR/baton-executor
MESOS_LOCAL_BIN=$BATON_DIR/mesos-local
NEEDED=()
for scenario in "${SCENARIOS[@]}"; do
  # persistent-volume runs mesos-local and its executor, not Baton.
  case $scenario in
    persistent-volume) NEEDED+=("$MESOS_LOCAL_BIN" "$EXECUTOR_BIN") ;;
    # resident-app, pod and resident-pod run Baton against a real master, then against mesos-local.
    resident-app | pod | resident-pod) NEEDED+=("$MESOS_LOCAL_BIN" "$BATON_BIN" "$EXECUTOR_BIN") ;;
    *) NEEDED+=("$BATON_BIN" "$EXECUTOR_BIN") ;;
  esac
done
for bin in $(printf '%s\n' "${NEEDED[@]}" | sort -u); do
  [[ -x $bin ]] || { echo "missing $bin: run \`cargo build --bins\` first (or pass --baton DIR)" >&2; exit 2; }
done

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

# Milliseconds since the epoch, without forking (bash 5's EPOCHREALTIME; its
# decimal separator follows the locale, so drop either).
now_ms() {
  local us=${EPOCHREALTIME//[.,]/}
  echo $((us / 1000))
}

log() { printf '[%s] %s\n' "$(date +%T.%3N)" "$*"; }

# Strips ANSI colour codes (Baton's tracing output may carry them).
plain() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

# GET with a short timeout; fails on HTTP errors. Output on stdout.
get() { curl -fsS --max-time "${2:-3}" "$1" 2>/dev/null; }

# POST a JSON body (may be empty); prints the answer, fails on HTTP errors.
post_json() { curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' -d "${2:-}" "$1"; }

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: runs COMMAND (its output
# dropped) every 100 ms until it succeeds; after TIMEOUT_S seconds, or as soon
# as a process the scenario started has exited, logs what it waited for and
# returns 1.
wait_for() {
  local timeout=$1 what=$2 dead
  shift 2
  local deadline=$(($(now_ms) + timeout * 1000))
  until "$@" >/dev/null; do
    dead=$(exited_process)
    if [[ -n $dead ]]; then
      log "$dead exited while waiting for: $what"
      return 1
    fi
    if (($(now_ms) >= deadline)); then
      log "timed out after ${timeout}s waiting for: $what"
      return 1
    fi
    sleep 0.1
  done
}

# The name and pid of a process in PID (what the running scenario started and
# has not killed on purpose) that is gone or a zombie; '' if all run.
exited_process() {
  local name state
  for name in "${!PID[@]}"; do
    state=$(sed 's/.*) //' "/proc/${PID[$name]}/stat" 2>/dev/null | cut -d' ' -f1) || state=""
    if [[ -z $state || $state == Z || $state == X ]]; then
      echo "$name (pid ${PID[$name]})"
      return 0
    fi
  done
}

# A TCP port nobody listens on (checked in /proc/net/tcp*), chosen at random
# in 20000-29999 (below the agents' task port ranges), never twice in a run.
USED_PORTS=" "
free_port() {
  local port hex
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 10000))
    [[ $USED_PORTS == *" $port "* ]] && continue
    hex=$(printf ':%04X ' "$port")
    if ! awk 'NR > 1 { print $2 }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sed 's/$/ /' | grep -qF "$hex"; then
      USED_PORTS+="$port "
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# ---------------------------------------------------------------------------
# Processes: start, find, kill
# ---------------------------------------------------------------------------

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/baton-real-mesos.XXXXXX")
MY_PGID=$(($(ps -o pgid= -p $$)))

# spawn DIR LOG COMMAND...: starts COMMAND in DIR (created) as the leader of a
# new session and process group, stdout and stderr appended to LOG. Sets
# SPAWNED to its pid (setsid execs in place: the subshell is not a group
# leader, so the pid is the command's own) and records it in $ROOT/pids.
spawn() {
  local dir=$1 out=$2
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && exec setsid "$@") >>"$out" 2>&1 </dev/null &
  SPAWNED=$!
  echo "$SPAWNED $*" >>"$ROOT/pids"
}

# Pids of the processes whose working directory is under DIR or whose
# environment mentions DIR (a Mesos sandbox: MESOS_SANDBOX, MESOS_DIRECTORY).
procs_under() {
  local dir=$1 p pid cwd
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    if [[ $cwd == "$dir" || $cwd == "$dir"/* ]] || grep -qaF -- "$dir" "$p/environ" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# kill_under DIR: SIGKILLs every process under DIR (see procs_under) and its
# process group (never this script's), until none is left (at most 10 s).
kill_under() {
  local dir=$1 pid pgid left
  local deadline=$(($(now_ms) + 10000))
  while :; do
    left=$(procs_under "$dir")
    [[ -z $left ]] && return 0
    for pid in $left; do
      pgid=$(($(ps -o pgid= -p "$pid" 2>/dev/null || echo 0)))
      if ((pgid > 1 && pgid != MY_PGID)); then kill -9 -- "-$pgid" 2>/dev/null || true; fi
      kill -9 "$pid" 2>/dev/null || true
    done
    if (($(now_ms) >= deadline)); then
      log "WARNING: processes under $dir survived SIGKILL: ${left//$'\n'/ }"
      return 1
    fi
    sleep 0.1
  done
}

# kill_pid PID: SIGKILLs the process and its process group (it is a session
# leader started by spawn), then reaps it if it is our child.
kill_pid() {
  local pid=$1
  kill -9 -- "-$pid" 2>/dev/null || true
  kill -9 "$pid" 2>/dev/null || true
  { wait "$pid"; } 2>/dev/null || true
}

# The EXIT trap: kills everything left (a scenario normally cleans up after
# itself), checks that nothing survived, removes the temporary directory
# (keeps the logs if a scenario failed, everything with --keep).
FAILED=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Everything spawned runs with its cwd under ROOT, so this finds it all
  # (the pids in $ROOT/pids are a record only: by now they may be reused).
  kill_under "$ROOT" || true
  local survivors
  survivors=$(procs_under "$ROOT" | tr '\n' ' ')
  if [[ -n ${survivors// /} ]]; then
    echo "WARNING: processes outlived the script: $survivors" >&2
    rc=1
  fi
  if ((KEEP)); then
    echo "kept $ROOT"
  elif ((FAILED)); then
    # Keep the logs only: drop Mesos, the agents' sandboxes and the stores.
    rm -rf "$ROOT/mesos"
    find "$ROOT" -mindepth 1 -type f ! -name '*.log' -delete 2>/dev/null || true
    find "$ROOT" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    echo "logs kept in $ROOT"
  else
    rm -rf "$ROOT"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------------------
# Packages and the Mesos build
# ---------------------------------------------------------------------------

# The runtime libraries of the Mesos build (its README), and what this script uses.
PACKAGES=(libapr1 libarchive13 libcurl4 libev4 libgrpc++1.51 libgrpc29 libleveldb1d libprotobuf32
  libsasl2-2 libsvn1 libzookeeper-mt2 zlib1g libsasl2-modules curl ca-certificates jq util-linux procps)
[[ " ${SCENARIOS[*]} " == *" zk-master-failover "* ]] && PACKAGES+=(zookeeper)

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing missing packages: ${missing[*]}"
  local sudo=()
  (($(id -u) == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_packages
M=$ROOT/mesos
mkdir -p "$M"
log "unpacking $(basename "$TARBALL") into $M"
tar -xzf "$TARBALL" -C "$M"
if ldd "$M/sbin/mesos-master" "$M/sbin/mesos-agent" | grep -q 'not found'; then
  echo "Mesos is missing libraries:" >&2
  ldd "$M/sbin/mesos-master" "$M/sbin/mesos-agent" | grep 'not found' | sort -u >&2
  exit 2
fi

# ---------------------------------------------------------------------------
# Cluster pieces (each scenario runs in a subshell: these globals are its own)
# ---------------------------------------------------------------------------

SDIR=""          # the running scenario's directory
declare -A PID=() # name -> pid of what the scenario started
declare -A PORT=() # name -> port

# start_master NAME FLAGS...: a master on 127.0.0.1 with its own work_dir.
start_master() {
  local name=$1
  shift
  PORT[$name]=$(free_port)
  spawn "$SDIR/$name" "$SDIR/$name.log" "$M/sbin/mesos-master" \
    --ip=127.0.0.1 --hostname=127.0.0.1 --port="${PORT[$name]}" --work_dir="$SDIR/$name/work" "$@"
  PID[$name]=$SPAWNED
  log "$name: mesos-master pid ${PID[$name]} on 127.0.0.1:${PORT[$name]}"
}

# start_agent NAME MASTER RACK PORT_RANGE: an agent with its own work_dir,
# runtime_dir and fetcher cache (the defaults, /tmp/mesos and /var/run/mesos,
# would be shared by the agents: each would take the other's containers for
# orphans of its own).
AGENT_ISOLATION=(--launcher=posix --isolation=posix/cpu,posix/mem)
start_agent() {
  local name=$1 master=$2 rack=$3 ports=$4
  PORT[$name]=$(free_port)
  local dir=$SDIR/$name
  spawn "$dir" "$SDIR/$name.log" "$M/sbin/mesos-agent" \
    --master="$master" --ip=127.0.0.1 --hostname=127.0.0.1 --port="${PORT[$name]}" \
    --work_dir="$dir/work" --runtime_dir="$dir/run" --fetcher_cache_dir="$dir/fetch" \
    "${AGENT_ISOLATION[@]}" --systemd_enable_support=false --no-switch_user \
    --launcher_dir="$M/libexec/mesos" --attributes="rack_id:$rack" \
    --resources="cpus:4;mem:4096;disk:4096;ports:[$ports]"
  PID[$name]=$SPAWNED
  log "$name: mesos-agent pid ${PID[$name]} on 127.0.0.1:${PORT[$name]} (rack_id:$rack, ports $ports)"
}

# The agent id a master gives the agent on PORT ('' until it registered).
agent_id() { # MASTER_PORT AGENT_PORT
  get "http://127.0.0.1:$1/master/slaves" | jq -r --arg pid "slave(1)@127.0.0.1:$2" \
    '.slaves[] | select(.pid == $pid and .active) | .id' 2>/dev/null
}
agent_registered() { [[ -n $(agent_id "$1" "$2") ]]; }
both_agents_registered() {
  agent_registered "${PORT[master]}" "${PORT[agentA]}" && agent_registered "${PORT[master]}" "${PORT[agentB]}"
}

# start_baton MASTER [EXECUTOR_PATH [FLAG...]]: Baton with its own data dir
# and port; BATON=its URL. EXECUTOR_PATH (default, or '': the built
# baton-executor) is the binary it serves to the agents; the FLAGs are added
# to its command line. It runs in $SDIR/$BATON_NAME and logs to
# $SDIR/$BATON_NAME.log (BATON_NAME: baton unless a scenario that starts
# several Batons one after the other names each).
BATON=""
BATON_NAME=baton
start_baton() {
  local master=$1 executor=${2:-$EXECUTOR_BIN}
  shift $(($# < 2 ? $# : 2))
  PORT[baton]=$(free_port)
  BATON=http://127.0.0.1:${PORT[baton]}
  spawn "$SDIR/$BATON_NAME" "$SDIR/$BATON_NAME.log" env NO_COLOR=1 "$BATON_BIN" \
    --master "$master" --hostname 127.0.0.1 --http_address 127.0.0.1 --http_port "${PORT[baton]}" \
    --data_dir "$SDIR/$BATON_NAME/data" --executor_path "$executor" "$@"
  PID[baton]=$SPAWNED
  log "$BATON_NAME: pid ${PID[baton]} on $BATON, --master $master, --executor_path $executor${*:+, $*}"
}

baton_connected() { get "$BATON/metrics" | grep -q '^marathon_mesos_connected 1'; }
framework_id() { get "$BATON/v2/info" | jq -r '.frameworkId // empty'; }
deployments_empty() { [[ $(get "$BATON/v2/deployments" | jq length) == 0 ]]; }
queue_empty() { [[ $(get "$BATON/v2/queue" | jq '.queue | length') == 0 ]]; }

# Number of the app's tasks Baton reports TASK_RUNNING.
running_tasks() { get "$BATON/v2/apps/$1/tasks" | jq '[.tasks[] | select(.state == "TASK_RUNNING")] | length'; }
tasks_running() { [[ $(running_tasks "$1") == "$2" ]]; }

# stop_scenario: SIGKILLs (and reaps) Baton, the agents, the masters and
# ZooKeeper of the scenario, in that order, then the executors and tasks left
# in the agents' sandboxes (anything else under the scenario's directory).
stop_scenario() {
  local name
  [[ -n ${PID[baton]:-} ]] && kill_pid "${PID[baton]}"
  for name in "${!PID[@]}"; do [[ $name == agent* ]] && kill_pid "${PID[$name]}"; done
  for name in "${!PID[@]}"; do kill_pid "${PID[$name]}"; done
  PID=()
  kill_under "$SDIR" || true
}

# Quotes the last lines of a log (colours stripped) matching an optional pattern.
show_log() { # FILE LINES [REGEX]
  echo "---- $(basename "$1") ($1)${3:+, lines matching /$3/} ----"
  if [[ -n ${3:-} ]]; then plain "$1" | grep -E -- "$3" | tail -n "$2"; else plain "$1" | tail -n "$2"; fi
}

# ---------------------------------------------------------------------------
# Scenario 1: maximumOverCapacity 0 never runs a 4th task during restarts
# ---------------------------------------------------------------------------

# Tasks of framework FW the master holds as STAGING/STARTING/RUNNING/KILLING.
live_tasks_on_master() { # MASTER_PORT FW
  get "http://127.0.0.1:$1/master/tasks?limit=100000" 1 | jq --arg fw "$2" '[.tasks[]
    | select(.framework_id == $fw and (.state | IN("TASK_STAGING","TASK_STARTING","TASK_RUNNING","TASK_KILLING")))]
    | length'
}

scenario_max_over_zero() {
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  start_agent agentB "127.0.0.1:${PORT[master]}" r2 31100-31199
  wait_for 60 "both agents registered" both_agents_registered
  start_baton "127.0.0.1:${PORT[master]}"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  local fw
  fw=$(framework_id)
  log "framework $fw"

  post_json "$BATON/v2/apps" '{"id":"/cap","cmd":"sleep 100000","cpus":0.01,"mem":16,"instances":3,
    "upgradeStrategy":{"minimumHealthCapacity":0.5,"maximumOverCapacity":0},
    "labels":{"BATON_DRAIN_SECONDS":"2"}}' >/dev/null
  wait_for 60 "3 tasks of /cap TASK_RUNNING" tasks_running cap 3
  wait_for 30 "the deployment of /cap to finish" deployments_empty

  local round max_all=0 min_all=999 ok=1 detail=""
  for round in 1 2; do
    local before after
    before=$(get "$BATON/v2/apps/cap/tasks" | jq -r '[.tasks[].id] | sort | join(" ")')
    post_json "$BATON/v2/apps/cap/restart" >/dev/null
    local started
    started=$(now_ms)
    # Sample the master every ~50 ms while the deployment runs, and 2 s more
    # (the last old task may still be being killed when it is reported done).
    local max=0 min=999 samples=0 n done_at=0 t
    while :; do
      t=$(now_ms)
      if n=$(live_tasks_on_master "${PORT[master]}" "$fw") && [[ $n =~ ^[0-9]+$ ]]; then
        samples=$((samples + 1))
        ((n > max)) && max=$n
        ((n < min)) && min=$n
      fi
      if ((done_at == 0)) && deployments_empty; then done_at=$(now_ms); fi
      ((done_at > 0 && t - done_at >= 2000)) && break
      if ((t - started > 120000)); then
        log "restart $round: deployment still running after 120 s"
        ok=0
        break
      fi
      local rest=$((50 - ($(now_ms) - t)))
      ((rest > 0)) && sleep "0.$(printf '%03d' "$rest")"
    done
    wait_for 30 "3 tasks of /cap TASK_RUNNING after restart $round" tasks_running cap 3 || ok=0
    after=$(get "$BATON/v2/apps/cap/tasks" | jq -r '[.tasks[].id] | sort | join(" ")')
    local replaced
    replaced=$(comm -23 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | grep -c . || true)
    local took=$(((done_at > 0 ? done_at : $(now_ms)) - started))
    local every=$(((took + 2000) / (samples ? samples : 1)))
    log "restart $round: deployment took ${took} ms; $samples master samples (one per ~${every} ms); live tasks min $min max $max; old tasks replaced $replaced/3"
    detail+=" restart$round(max=$max min=$min samples=$samples every~${every}ms took=${took}ms replaced=$replaced/3)"
    ((max > max_all)) && max_all=$max
    ((min < min_all)) && min_all=$min
    ((replaced == 3)) || ok=0
  done

  if ((ok && max_all == 3)); then
    echo "PASS max-over-zero: max live tasks on the master during 2 restarts = $max_all (limit 3), min $min_all;$detail"
  else
    echo "FAIL max-over-zero: max live tasks on the master during 2 restarts = $max_all (want exactly 3), min $min_all;$detail"
    show_log "$SDIR/baton.log" 40
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 2: GROUP_BY rack_id, one rack's agent dies with its tasks
# ---------------------------------------------------------------------------

scenario_group_by_rack_outage() {
  # Agent loss detected after 3 missed pings of 1 s instead of 5 x 15 s.
  start_master master --registry=in_memory --agent_ping_timeout=1secs --max_agent_ping_timeouts=3
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  start_agent agentB "127.0.0.1:${PORT[master]}" r2 31100-31199
  wait_for 60 "both agents registered" both_agents_registered
  local idA idB
  idA=$(agent_id "${PORT[master]}" "${PORT[agentA]}")
  idB=$(agent_id "${PORT[master]}" "${PORT[agentB]}")
  log "agent A (r1) = $idA, agent B (r2) = $idB"
  start_baton "127.0.0.1:${PORT[master]}"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected

  post_json "$BATON/v2/apps" '{"id":"/gb","cmd":"sleep 100000","cpus":0.01,"mem":16,"instances":2,
    "constraints":[["rack_id","GROUP_BY"]]}' >/dev/null
  # Baton's TASK_RUNNING tasks of /gb as "<on A> <on B> <total>".
  per_agent() {
    get "$BATON/v2/apps/gb/tasks" | jq -r --arg a "$idA" --arg b "$idB" '[.tasks[] | select(.state == "TASK_RUNNING")]
      | "\([.[] | select(.slaveId == $a)] | length) \([.[] | select(.slaveId == $b)] | length) \(length)"'
  }
  one_per_rack() { [[ $(per_agent) == "1 1 2" ]]; }
  wait_for 60 "2 tasks of /gb running, one per rack" one_per_rack
  wait_for 30 "the deployment of /gb to finish" deployments_empty
  log "before the outage: running per agent (A B total) = $(per_agent)"

  # The outage: agent B, then every executor and task in its sandboxes.
  kill_pid "${PID[agentB]}"
  local lost
  lost=$(now_ms)
  unset 'PID[agentB]'
  kill_under "$SDIR/agentB"
  log "agent B and its tasks killed"

  # Until 60 s after the loss: Baton runs 2 tasks, both on agent A, and its
  # queue is empty. Also notes when the master and Baton saw the loss.
  local t marked=0 seen=0 passed=0 counts="" queue="" bstate=""
  while :; do
    t=$(now_ms)
    if ((marked == 0)) && grep -q "Marking agent $idB .*unreachable" "$SDIR/master.log"; then
      marked=$t
    fi
    bstate=$(get "$BATON/v2/apps/gb/tasks" | jq -r --arg b "$idB" '[.tasks[] | select(.slaveId == $b) | .state] | join(",")') ||
      bstate=TASK_RUNNING # no answer: nothing learnt
    if ((seen == 0)) && [[ $bstate != *TASK_RUNNING* ]]; then seen=$t; fi
    counts=$(per_agent) || counts=""
    if [[ $counts == "2 0 2" ]] && queue_empty; then
      passed=$t
      break
    fi
    ((t - lost >= 60000)) && break
    sleep 0.2
  done
  queue=$(get "$BATON/v2/queue") || queue="(no answer)"
  local timeline="master marked B unreachable at +$((marked ? marked - lost : -1)) ms (-1 = not seen in its log);"
  timeline+=" Baton stopped listing B's task as running at +$((seen ? seen - lost : -1)) ms (now: '${bstate:-no task on B}')"
  if ((passed)); then
    echo "PASS group-by-rack-outage: 2 instances running on r1 (agent A) and /v2/queue empty $((passed - lost)) ms after agent B's loss (limit 60000 ms); $timeline"
  else
    echo "FAIL group-by-rack-outage: 60 s after agent B's loss, running per agent (A B total) = ${counts:-?} (want \"2 0 2\"), queue not empty or tasks missing; $timeline"
    echo "/v2/queue: $queue"
    echo "/v2/apps/gb/tasks: $(get "$BATON/v2/apps/gb/tasks" | jq -c '[.tasks[] | {id, state, slaveId}]')"
    show_log "$SDIR/baton.log" 40
    show_log "$SDIR/master.log" 25 "$idB|unreachable|Removed agent|TASK_LOST|TASK_UNREACHABLE|Marking"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 3: the leading master dies; Baton follows ZooKeeper to the new one
# ---------------------------------------------------------------------------

# start_zookeeper: a standalone server (Debian's jars, run with java, as
# tests/src/zookeeper.rs does) on a free port, 100 ms ticks, data in SDIR.
start_zookeeper() {
  local dir=$SDIR/zookeeper
  PORT[zk]=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=100
minSessionTimeout=200
maxSessionTimeout=60000
dataDir=$dir/data
clientPort=${PORT[zk]}
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,dump,wchs
maxClientCnxns=0
forceSync=no
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
EOF
  local cp=/usr/share/java/zookeeper.jar jar
  for jar in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do [[ -f $jar ]] && cp+=":$jar"; done
  spawn "$dir" "$SDIR/zookeeper.log" java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Djava.io.tmpdir="$dir" \
    -cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg"
  PID[zk]=$SPAWNED
  log "zookeeper: pid ${PID[zk]} on 127.0.0.1:${PORT[zk]}"
}

# zk_word WORD: a ZooKeeper four-letter word's answer (ZooKeeper closes after it).
zk_word() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "${PORT[zk]}" "$1"
}
zk_serving() { zk_word srvr 2>/dev/null | grep -q 'Mode: standalone'; }
# The leading master's znode: the lowest /mesos/json.info_<seq> among the live
# sessions' ephemeral znodes ('' if none).
zk_leader_znode() { zk_word dump 2>/dev/null | grep -o '/mesos/json\.info_[0-9]*' | sort | head -n 1; }

# Which of master1 and master2 leads: the one whose /master/state answers
# and names itself as leader (a master that does not lead answers a 307
# redirect to the leader instead, with no body).
leading_master() {
  local name
  for name in master1 master2; do
    if [[ $(get "http://127.0.0.1:${PORT[$name]}/master/state" 2 |
      jq --arg me "master@127.0.0.1:${PORT[$name]}" '.leader == $me' 2>/dev/null) == true ]]; then
      echo "$name"
      return 0
    fi
  done
  return 1
}
# Whether master PORT lists framework FW as active and connected. (Tests
# jq's output: `jq -e` of jq 1.6 succeeds on an empty body, a 307's.)
framework_active_on() { # MASTER_PORT FW
  [[ $(get "http://127.0.0.1:$1/master/state" 2 |
    jq --arg fw "$2" 'any(.frameworks[]; .id == $fw and .active == true and .connected == true)' 2>/dev/null) == true ]]
}

scenario_zk_master_failover() {
  start_zookeeper
  wait_for 60 "ZooKeeper serving" zk_serving
  local zk="zk://127.0.0.1:${PORT[zk]}/mesos"
  start_master master1 --zk="$zk" --quorum=1 --registry=replicated_log
  start_master master2 --zk="$zk" --quorum=1 --registry=replicated_log
  wait_for 60 "a leading master" leading_master
  start_agent agent "$zk" r1 31000-31099
  start_baton "$zk"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  local fw
  fw=$(framework_id)

  local old new
  old=$(leading_master)
  if [[ $old == master1 ]]; then new=master2; else new=master1; fi
  wait_for 30 "framework $fw active on the leader ($old)" framework_active_on "${PORT[$old]}" "$fw"
  wait_for 30 "the agent registered with the leader" agent_registered "${PORT[$old]}" "${PORT[agent]}"
  local old_znode
  old_znode=$(zk_leader_znode)
  log "leader: $old (127.0.0.1:${PORT[$old]}, znode $old_znode); framework $fw active on it; killing it (SIGKILL)"

  local log_lines
  log_lines=$(wc -l <"$SDIR/baton.log")
  kill_pid "${PID[$old]}"
  local killed
  killed=$(now_ms)
  unset "PID[$old]"

  # Every ~50 ms: has the killed master's znode gone, i.e. is the next one
  # named leader in ZooKeeper? Then: is Baton subscribed to the new leader?
  local t named=0 subscribed=0 disconnected=0 znode=""
  while :; do
    t=$(now_ms)
    ((disconnected == 0)) && ! baton_connected && disconnected=$t
    if ((named == 0)); then
      znode=$(zk_leader_znode) || znode=""
      if [[ -n $znode && $znode != "$old_znode" ]]; then
        named=$t
        log "ZooKeeper names $znode leader ($new)"
      fi
    fi
    if ((named)) && baton_connected && framework_active_on "${PORT[$new]}" "$fw"; then
      subscribed=$t
      break
    fi
    ((t - killed > 60000)) && break
    sleep 0.03
  done

  # Baton's "subscription failed" lines since the kill: in all, and those
  # naming the new master (after it was named: refused, or unreachable), with
  # the distinct reasons the latter give.
  local failures fails_total fails_new reasons
  failures=$(tail -n +$((log_lines + 1)) "$SDIR/baton.log" | plain | grep 'subscription failed' || true)
  fails_total=$(grep -c . <<<"$failures" || true)
  fails_new=$(grep -c "master=http://127.0.0.1:${PORT[$new]} " <<<"$failures" || true)
  reasons=$(grep "master=http://127.0.0.1:${PORT[$new]} " <<<"$failures" |
    sed -E 's/.* error=(.*) attempt=.*/\1/' | sort | uniq -c | sed -E 's/^ *([0-9]+) /\1x /' | paste -sd ';' - || true)
  # The same interval from the logs' own timestamps, as a cross-check of the
  # ~50 ms polling: the new master's "Elected as the leading master!" (glog,
  # local time, no year) to Baton's first "subscribed" line to it (UTC).
  local elected_ms=0 subscribed_ms=0 stamp
  stamp=$(plain "$SDIR/$new.log" | grep -m1 'Elected as the leading master' |
    sed -E 's/^I([0-9]{2})([0-9]{2}) ([0-9:.]+) .*/\1-\2 \3/' || true)
  [[ -n $stamp ]] && elected_ms=$(date -d "$(date +%Y)-$stamp" +%s%3N 2>/dev/null || echo 0)
  stamp=$(tail -n +$((log_lines + 1)) "$SDIR/baton.log" | plain |
    grep -m1 -E " subscribed master=http://127\.0\.0\.1:${PORT[$new]} " | awk '{print $1}' || true)
  [[ -n $stamp ]] && subscribed_ms=$(date -d "$stamp" +%s%3N 2>/dev/null || echo 0)
  local by_logs=-1
  ((elected_ms && subscribed_ms)) && by_logs=$((subscribed_ms - elected_ms))
  # The verdict takes the longer of the two measurements.
  local took=$((subscribed - named))
  ((by_logs > took)) && took=$by_logs

  local facts="by polling $((subscribed - named)) ms, by the logs' timestamps ${by_logs} ms ($new elected -> Baton 'subscribed');"
  facts+=" kill -> new leader named in ZooKeeper $((named ? named - killed : -1)) ms (the dead master's ZK session expiring);"
  facts+=" Baton saw the disconnection at +$((disconnected ? disconnected - killed : -1)) ms;"
  facts+=" 'subscription failed' lines: $fails_total after the kill, $fails_new of them to $new${reasons:+ ($reasons)}"
  if ((named && subscribed && took < 2000)); then
    echo "PASS zk-master-failover: new leader named -> Baton subscribed again (metric 1, framework active+connected on $new) in $took ms (limit 2000 ms); $facts"
  else
    local what
    if ((named == 0)); then
      what="no new leader named in ZooKeeper within 60 s"
    elif ((subscribed == 0)); then
      what="Baton not subscribed to $new within 60 s of the kill"
    else
      what="new leader named -> Baton subscribed again took $took ms (limit 2000 ms)"
    fi
    echo "FAIL zk-master-failover: $what; $facts"
    tail -n +$((log_lines + 1)) "$SDIR/baton.log" >"$SDIR/baton-after-kill.log"
    show_log "$SDIR/baton-after-kill.log" 40
    show_log "$SDIR/$new.log" 30 "lect|ecover|egistr|ramework|subscribe"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 4: the agent cannot fetch baton-executor: Baton's failure, not the app's
# ---------------------------------------------------------------------------

# Baton's baton_executor_fetch_failures_total ('' if no answer).
fetch_failures() { get "$BATON/metrics" | awk '$1 == "baton_executor_fetch_failures_total" { print $2 }'; }

# The last status of every completed task of framework FW on the master, as
# one compact JSON object a line: {id, state, reason, message, source}. From
# the v1 operator API (GET_TASKS), whose statuses are whole TaskStatus messages.
completed_statuses() { # MASTER_PORT FW
  curl -fsS --max-time 3 -X POST -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d '{"type":"GET_TASKS"}' "http://127.0.0.1:$1/api/v1" 2>/dev/null |
    jq -c --arg fw "$2" '.get_tasks.completed_tasks // [] | .[] | select(.framework_id.value == $fw)
      | (.statuses // [] | last) as $s
      | {id: .task_id.value, state: (.state // $s.state), reason: $s.reason, message: $s.message, source: $s.source}'
}

scenario_executor_fetch_failure() {
  start_master master --registry=in_memory
  start_agent agent "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agent]}"
  # An executor binary that does not exist: Baton serves its URL with a 404.
  start_baton "127.0.0.1:${PORT[master]}" "$SDIR/missing/baton-executor"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  local fw code
  fw=$(framework_id)
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$BATON/executor/baton-executor" || true)
  log "framework $fw; GET $BATON/executor/baton-executor answers HTTP $code"

  post_json "$BATON/v2/apps" '{"id":"/fetch","cmd":"sleep 100000","cpus":0.01,"mem":16,"instances":1,
    "backoffSeconds":60,"maxLaunchDelaySeconds":600}' >/dev/null
  local posted
  posted=$(now_ms)

  # Every ~50 ms (a relaunch takes a few hundred: /fetch is queued only
  # briefly between them): the metric, /fetch's queue entry, the metric
  # again (a sample counts as "before the 11th failure" only if the metric
  # read after the queue is still <= 10: no race with the 11th failure).
  # Until a delay > 0 shows with the metric >= 11; at most 180 s for the
  # 11 failures, then 120 s for the delay.
  local t n1 n2 entry tl lf max_free=0 samples=0 queued=0 early="" lf_early=0
  local at1=0 at2=0 at11=0 delayed=0 delay_tl="" delay_n="" delay_lf=""
  while :; do
    t=$(now_ms)
    n1=$(fetch_failures) || n1=""
    entry=$(get "$BATON/v2/queue" | jq -c '.queue[] | select(.app.id == "/fetch")
      | {tl: .delay.timeLeftSeconds, lf: (.lastTaskFailure != null)}' 2>/dev/null) || entry=""
    n2=$(fetch_failures) || n2=""
    if [[ $n1 =~ ^[0-9]+$ && $n2 =~ ^[0-9]+$ ]]; then
      tl=0 lf=false
      [[ -n $entry ]] && tl=$(jq '.tl // 0' <<<"$entry") && lf=$(jq '.lf' <<<"$entry")
      ((at1 == 0 && n2 >= 1)) && at1=$t
      ((at2 == 0 && n2 >= 2)) && at2=$t
      ((at11 == 0 && n2 >= 11)) && at11=$t
      if ((n2 <= 10)); then
        samples=$((samples + 1))
        [[ -n $entry ]] && queued=$((queued + 1))
        [[ $lf == true ]] && lf_early=$((lf_early + 1))
        if ((tl > 0)); then
          [[ -z $early ]] && early="timeLeftSeconds=$tl at metric $n2"
        else
          ((n2 > max_free)) && max_free=$n2
        fi
      elif ((n1 >= 11 && tl > 0)); then
        delayed=$t delay_tl=$tl delay_n=$n2 delay_lf=$lf
        break
      fi
    fi
    ((at11 == 0 && t - posted > 180000)) && break
    ((at11 > 0 && t - at11 > 120000)) && break
    sleep 0.05
  done

  # What the master holds of the failed tasks, and what Baton saw of them.
  local statuses first distinct failed_on_master embed baton_lines streak_lines
  statuses=$(completed_statuses "${PORT[master]}" "$fw") || statuses=""
  failed_on_master=$(jq -s '[.[] | select(.state == "TASK_FAILED")] | length' <<<"$statuses")
  first=$(head -n 1 <<<"$statuses")
  distinct=$(jq -s -c '[.[] | {state, reason, source, message: (.message // "" | gsub("[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"; "<id>"))}]
    | group_by(.) | map(.[0] + {count: length})' <<<"$statuses")
  embed=$(get "$BATON/v2/apps/fetch?embed=app.lastTaskFailure" | jq -c '.app.lastTaskFailure // null' 2>/dev/null) || embed="?"
  baton_lines=$(plain "$SDIR/baton.log" | grep -c 'the agent could not fetch baton-executor' || true)
  streak_lines=$(plain "$SDIR/baton.log" | grep -c 'the agents keep failing to fetch baton-executor' || true)
  log "master's completed tasks of $fw: $failed_on_master TASK_FAILED; their last statuses (container ids masked): $distinct"
  log "first failed task's last status on the master: $first"
  log "Baton: $baton_lines 'the agent could not fetch baton-executor' lines, $streak_lines 'keep failing' lines; lastTaskFailure: $embed"

  # /fetch is queued only briefly between relaunches, so the samples may
  # never see it: the 1st to 11th failures coming less than backoffSeconds
  # (60 s) apart is what shows that none of the first 10 put the app's
  # launch delay in force (it would hold the next launch back 60 s).
  local spread=-1
  ((at1 && at11)) && spread=$((at11 - at1))
  local facts="executor URL HTTP $code; metric >= 1 at +$((at1 ? at1 - posted : -1)) ms, >= 2 at +$((at2 ? at2 - posted : -1)) ms, >= 11 at +$((at11 ? at11 - posted : -1)) ms after the POST (1st -> 11th: $spread ms, backoffSeconds 60);"
  facts+=" $samples queue samples at metric <= 10 ($queued with /fetch queued, $lf_early with lastTaskFailure), highest metric seen without a delay $max_free;"
  local reason="none" message="null"
  if [[ -n $first ]]; then
    reason=$(jq -r '.reason // "none"' <<<"$first")
    message=$(jq -c '.message // null' <<<"$first")
  fi
  facts+=" master: $failed_on_master TASK_FAILED, first one's last status reason=$reason message=$message"
  if ((delayed)); then
    facts+="; after failure $delay_n: delay timeLeftSeconds=$delay_tl at +$((delayed - at11)) ms, lastTaskFailure in the queue: $delay_lf"
  fi
  if [[ -z $early ]] && ((max_free >= 2 && delayed && spread < 60000)); then
    echo "PASS executor-fetch-failure: no launch delay up to metric $max_free (>= 2, <= 10), delay ${delay_tl}s after $delay_n failures; $facts"
  else
    local what
    if [[ -n $early ]]; then
      what="a launch delay before the 11th fetch failure ($early)"
    elif ((max_free < 2)); then
      what="baton_executor_fetch_failures_total never reached 2 without a launch delay (highest $max_free)"
    elif ((at11 == 0)); then
      what="baton_executor_fetch_failures_total did not reach 11 within 180 s of the POST (last $n2)"
    elif ((spread >= 60000)); then
      what="the 1st to 11th fetch failures took $spread ms (>= backoffSeconds 60 s: a launch delay held a relaunch back)"
    else
      what="no delay > 0 in /v2/queue within 120 s of the 11th fetch failure"
    fi
    echo "FAIL executor-fetch-failure: $what; $facts"
    echo "/v2/queue: $(get "$BATON/v2/queue" | jq -c '.queue[] | {app: .app.id, count, delay, lastTaskFailure}')"
    show_log "$SDIR/baton.log" 30 "fetch|executor|task status"
    show_log "$SDIR/agent.log" 30 "etch|Failed|TASK_FAILED|rror"
    # The agent's fetcher logs into the executor's sandbox, not the agent's log.
    local sandbox_err
    sandbox_err=$(find "$SDIR/agent/work/slaves" -name stderr -newer "$SDIR/baton.log" 2>/dev/null | head -n 1)
    [[ -n $sandbox_err ]] && show_log "$sandbox_err" 5 "etch|EXIT"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# A SUBSCRIBE sent with curl: what the master itself answers (scenarios 5, 6)
# ---------------------------------------------------------------------------

# A random word, for secrets.
random_word() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# Baton's FrameworkInfo (Settings::framework_info) as JSON, for ROLES (a
# comma list, as --mesos_role) and PRINCIPAL: MULTI_ROLE with `roles` when
# there are several, else `role` (none for `*`).
baton_framework_info() { # ROLES PRINCIPAL
  jq -cn --arg roles "$1" --arg principal "$2" --arg user "$(id -un)" '
    ($roles | split(",")) as $r
    | {user: $user, name: "marathon", failover_timeout: 604800, checkpoint: true,
       principal: $principal, hostname: "127.0.0.1",
       capabilities: ([{type: "PARTITION_AWARE"}, {type: "TASK_KILLING_STATE"}]
         + (if ($r | length) > 1 then [{type: "MULTI_ROLE"}] else [] end))}
    + (if ($r | length) > 1 then {roles: $r} elif $r[0] != "*" then {role: $r[0]} else {} end)'
}

# The records of a RecordIO file (a Mesos event stream), one a line.
recordio_records() { # FILE
  local LC_ALL=C data len
  data=$(cat "$1")
  while [[ $data =~ ^([0-9]+)$'\n' ]]; do
    len=${BASH_REMATCH[1]}
    data=${data:${#len}+1}
    printf '%s\n' "${data:0:len}"
    data=${data:len}
  done
}

# The value of header NAME in a curl -D FILE ('' if absent).
raw_header() { # FILE NAME
  { grep -i "^$2:" "$1" || true; } | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

# raw_subscribe MASTER_PORT FRAMEWORK_INFO [CURL_ARG...]: POSTs a JSON
# SUBSCRIBE with curl (CURL_ARGs: e.g. -u principal:secret) and reads the
# answer for at most 3 s. Sets RAW_STATUS (the HTTP status), RAW_CHALLENGE
# (WWW-Authenticate), RAW_BODY (the body, JSON-quoted, when not 200),
# RAW_EVENTS (when 200: each event's type, an ERROR's message JSON-quoted
# after it, ' | ' between events), RAW_CLOSED (1 if the master closed the
# stream within the 3 s) and RAW_ANSWER (all of it, headers included, on one
# line). Headers and body stay in $SDIR/raw-<n>.*.
RAW_N=0
raw_subscribe() {
  local port=$1 info=$2
  shift 2
  RAW_N=$((RAW_N + 1))
  local hdr=$SDIR/raw-$RAW_N.headers body=$SDIR/raw-$RAW_N.body rc=0 started took
  started=$(now_ms)
  curl -sS -N --max-time 3 -D "$hdr" -o "$body" -X POST -H 'Content-Type: application/json' \
    -H 'Accept: application/json' -H 'Expect:' "$@" \
    -d "$(jq -cn --argjson info "$info" '{type: "SUBSCRIBE", subscribe: {framework_info: $info}}')" \
    "http://127.0.0.1:$port/api/v1/scheduler" 2>/dev/null || rc=$?
  took=$(($(now_ms) - started))
  RAW_STATUS=$(head -n 1 "$hdr" 2>/dev/null | awk '{print $2}')
  RAW_CHALLENGE=$(raw_header "$hdr" WWW-Authenticate)
  RAW_CLOSED=$((rc == 0))
  RAW_BODY="" RAW_EVENTS=""
  local stream_id content_type
  stream_id=$(raw_header "$hdr" Mesos-Stream-Id)
  content_type=$(raw_header "$hdr" Content-Type)
  RAW_ANSWER="HTTP ${RAW_STATUS:-(none, curl exit $rc)}"
  [[ -n $RAW_CHALLENGE ]] && RAW_ANSWER+=", WWW-Authenticate: $RAW_CHALLENGE"
  RAW_ANSWER+=", Content-Type: ${content_type:-none}, Mesos-Stream-Id: ${stream_id:-none}"
  if [[ $RAW_STATUS == 200 ]]; then
    RAW_EVENTS=$(recordio_records "$body" |
      jq -r '.type + (if .error then " " + (.error.message | tojson) else "" end)' 2>/dev/null |
      paste -sd '|' - | sed 's/|/ | /g') || RAW_EVENTS="(not RecordIO JSON)"
    RAW_ANSWER+=", events: ${RAW_EVENTS:-none}; "
    if ((RAW_CLOSED)); then RAW_ANSWER+="the master closed the stream after $took ms"; else RAW_ANSWER+="stream still open after 3 s"; fi
  else
    RAW_BODY=$(jq -Rs . <"$body" 2>/dev/null) || RAW_BODY='""'
    RAW_ANSWER+=", body $RAW_BODY"
  fi
}

# Baton's 'subscription failed' lines matching REGEX (ERE), counted, in the
# log of the running Baton ($BATON_NAME), from line FROM (default 1).
failed_lines() { # REGEX [FROM]
  tail -n +"${2:-1}" "$SDIR/$BATON_NAME.log" | plain | grep 'subscription failed' | grep -c -E -- "$1" || true
}
at_least_failed() { (($(failed_lines "$1") >= $2)); } # REGEX N
# The error= of the first 'subscription failed' line matching REGEX.
failed_error() { # REGEX
  plain "$SDIR/$BATON_NAME.log" | grep 'subscription failed' | grep -m1 -E -- "$1" |
    sed -E 's/.* error=(.*) attempt=[0-9]+$/\1/' || true
}
# Milliseconds since the epoch of the first line of the running Baton's log
# (after line FROM) matching REGEX: its UTC timestamp (0 if none).
baton_log_ms() { # REGEX FROM
  local stamp
  stamp=$(tail -n +"$2" "$SDIR/$BATON_NAME.log" | plain | grep -m1 -E -- "$1" | awk '{print $1}' || true)
  if [[ -n $stamp ]]; then date -d "$stamp" +%s%3N 2>/dev/null || echo 0; else echo 0; fi
}
baton_metric() { get "$BATON/metrics" | awk -v m="$1" '$1 == m { print $2 }'; } # NAME

# The master's record of framework FW: {principal, role, roles, active,
# connected} ('' if it has none).
master_framework() { # MASTER_PORT FW
  get "http://127.0.0.1:$1/master/state" 2 | jq -c --arg fw "$2" '.frameworks[] | select(.id == $fw)
    | {principal, role, roles, active, connected}' 2>/dev/null
}
framework_as() { # MASTER_PORT FW PRINCIPAL ROLE
  [[ $(master_framework "$1" "$2" | jq -r '"\(.principal) \(.role) \(.active) \(.connected)"' 2>/dev/null) == "$3 $4 true true" ]]
}
frameworks_on_master() { get "http://127.0.0.1:$1/master/state" 2 | jq '.frameworks | length'; } # MASTER_PORT
# Tasks of framework FW the master holds as TASK_RUNNING.
running_on_master() { # MASTER_PORT FW
  get "http://127.0.0.1:$1/master/tasks?limit=100000" 2 |
    jq --arg fw "$2" '[.tasks[] | select(.framework_id == $fw and .state == "TASK_RUNNING")] | length'
}
n_running_on_master() { [[ $(running_on_master "$1" "$2") == "$3" ]]; } # MASTER_PORT FW N

# The FLAGs of a master that authenticates frameworks with HTTP Basic
# against CREDENTIALS_FILE.
auth_flags() { # CREDENTIALS_FILE
  echo --authenticate_http_frameworks --http_framework_authenticators=basic --credentials="$1"
}

# What mesos-local answers (mesos-local/tests/integration/security.rs).
LOCAL_CHALLENGE='Basic realm="mesos-master-scheduler"'
LOCAL_401_BODY='"401 Unauthorized."'

# ---------------------------------------------------------------------------
# Scenario 5: framework authentication, a wrong secret fixed without restart
# ---------------------------------------------------------------------------

scenario_framework_auth() {
  local secret wrong
  secret=$(random_word)
  wrong=$(random_word)
  jq -n --arg s "$secret" '{credentials: [{principal: "baton", secret: $s}]}' >"$SDIR/credentials.json"
  chmod 600 "$SDIR/credentials.json"
  # shellcheck disable=SC2046 # the flags are words without spaces
  start_master master --registry=in_memory $(auth_flags "$SDIR/credentials.json")
  start_agent agent "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agent]}"

  # The master's own answers, next to what mesos-local answers.
  local info answers="" differs=""
  info=$(baton_framework_info '*' baton)
  raw_subscribe "${PORT[master]}" "$info"
  log "master, SUBSCRIBE without credentials: $RAW_ANSWER"
  answers+=" without credentials: $RAW_ANSWER;"
  [[ $RAW_STATUS == 401 && $RAW_CHALLENGE == "$LOCAL_CHALLENGE" && $RAW_BODY == "$LOCAL_401_BODY" ]] ||
    differs+=" without credentials: $RAW_ANSWER;"
  raw_subscribe "${PORT[master]}" "$info" -u "baton:$wrong"
  log "master, SUBSCRIBE with a wrong secret: $RAW_ANSWER"
  answers+=" wrong secret: $RAW_ANSWER;"
  [[ $RAW_STATUS == 401 && $RAW_CHALLENGE == "$LOCAL_CHALLENGE" && $RAW_BODY == "$LOCAL_401_BODY" ]] ||
    differs+=" wrong secret: $RAW_ANSWER;"
  raw_subscribe "${PORT[master]}" "$(baton_framework_info '*' other)" -u "baton:$secret"
  log "master, SUBSCRIBE as baton with FrameworkInfo.principal 'other': $RAW_ANSWER"
  answers+=" as baton with FrameworkInfo.principal 'other': $RAW_ANSWER"
  local mismatch
  mismatch=$(jq -n '"Failed to validate scheduler::Call: Authenticated principal '"'baton'"' does not match principal '"'other'"' set in `FrameworkInfo`"')
  [[ $RAW_STATUS == 400 && $RAW_BODY == "$mismatch" ]] || differs+=" principal mismatch: $RAW_ANSWER;"

  # Baton with the principal and a wrong secret: refused, alive, retrying.
  printf '%s\n' "$wrong" >"$SDIR/secret"
  start_baton "127.0.0.1:${PORT[master]}" "" \
    --mesos_authentication_principal baton --mesos_authentication_secret_file "$SDIR/secret"
  local started
  started=$(now_ms)
  wait_for 60 "4 'subscription failed' lines from Baton" at_least_failed . 4
  local failed refused named connected_before example
  failed=$(failed_lines .)
  refused=$(failed_lines 'master refused our credentials \(401\)')
  named=$(failed_lines 'master refused our credentials \(401\): .*--mesos_authentication_principal.*--mesos_authentication_secret_file')
  connected_before=$(baton_metric marathon_mesos_connected) || connected_before="?"
  example=$(failed_error .)
  log "Baton with the wrong secret: $failed 'subscription failed' lines in $(($(now_ms) - started)) ms, $refused of them 401s, $named naming both flags; marathon_mesos_connected $connected_before; first error=$example"

  # The right secret, written as an operator would, Baton left running.
  local from
  from=$(($(wc -l <"$SDIR/baton.log") + 1))
  printf '%s\n' "$secret" >"$SDIR/secret"
  local fixed t subscribed=0 fw="" record=""
  fixed=$(now_ms)
  while :; do
    t=$(now_ms)
    if baton_connected; then
      fw=$(framework_id) || fw=""
      if [[ -n $fw ]] && framework_as "${PORT[master]}" "$fw" baton '*'; then
        subscribed=$t
        break
      fi
    fi
    ((t - fixed > 30000)) && break
    sleep 0.05
  done
  [[ -n $fw ]] && record=$(master_framework "${PORT[master]}" "$fw")
  local by_logs=-1 stamp refused_after
  stamp=$(baton_log_ms ' subscribed master=' "$from")
  ((stamp)) && by_logs=$((stamp - fixed))
  refused_after=$(failed_lines '\(401\)' "$from")
  log "secret fixed -> subscribed: by polling $((subscribed ? subscribed - fixed : -1)) ms, by Baton's log ${by_logs} ms; framework $fw on the master: ${record:-none}"

  # Calls after SUBSCRIBE carry the credentials too: an app's task runs.
  local posted running=0 after_401=0
  if ((subscribed)); then
    post_json "$BATON/v2/apps" '{"id":"/auth","cmd":"sleep 100000","cpus":0.01,"mem":16,"instances":1}' >/dev/null
    posted=$(now_ms)
    if wait_for 60 "/auth's task TASK_RUNNING on the master" n_running_on_master "${PORT[master]}" "$fw" 1; then
      running=$(($(now_ms) - posted))
    fi
    wait_for 30 "Baton listing /auth's task TASK_RUNNING" tasks_running auth 1 || running=0
    after_401=$(tail -n +"$from" "$SDIR/baton.log" | plain | grep -A100000 -m1 ' subscribed master=' |
      grep -c '(401)' || true)
  fi

  # Neither secret, nor the Basic token of either, anywhere in Baton's log.
  local leaks=0 s
  for s in "$secret" "$wrong" "$(printf 'baton:%s' "$secret" | base64 -w0)" "$(printf 'baton:%s' "$wrong" | base64 -w0)"; do
    grep -qF -- "$s" "$SDIR/baton.log" && leaks=$((leaks + 1))
  done

  local took=$((subscribed ? subscribed - fixed : -1))
  ((by_logs > took)) && took=$by_logs
  local facts="wrong secret: $refused/$failed refusals in Baton's log were 401s, $named naming both flags, marathon_mesos_connected $connected_before, Baton alive and retrying (e.g. error=$example);"
  facts+=" secret fixed -> subscribed in $((subscribed ? subscribed - fixed : -1)) ms by polling, ${by_logs} ms by Baton's log, $refused_after 401s after the fix; framework on the master: ${record:-none};"
  facts+=" /auth TASK_RUNNING on the master $((running ? running : -1)) ms after the POST, $after_401 401s after SUBSCRIBE; secrets or Basic tokens in Baton's log: $leaks;"
  facts+=" the master answered:$answers"
  if [[ -z $differs ]] && ((refused >= 4 && refused == failed && named == refused)) && [[ $connected_before == 0 ]] &&
    ((leaks == 0 && subscribed && took < 16000 && running && after_401 == 0)); then
    echo "PASS framework-auth: wrong secret refused (401, flags named, secret never logged), fixed file -> subscribed without restart in $took ms (limit 16000 ms: the longest backoff step 15 s + 1 s), principal baton, 1 task running; the master answers as mesos-local does; $facts"
  else
    local what=()
    [[ -n $differs ]] && what+=("the master answered otherwise than mesos-local:$differs")
    ((refused >= 4 && refused == failed)) || what+=("not every 'subscription failed' line was a 401 ($refused of $failed)")
    ((named == refused)) || what+=("$((refused - named)) 401 lines do not name both flags")
    [[ $connected_before == 0 ]] || what+=("marathon_mesos_connected was '$connected_before' while refused")
    ((leaks == 0)) || what+=("Baton's log holds $leaks of the secrets or their Basic tokens")
    ((subscribed)) || what+=("Baton not subscribed as baton within 30 s of fixing the file")
    ((subscribed == 0 || took < 16000)) || what+=("fixed file -> subscribed took $took ms (limit 16000 ms)")
    ((subscribed == 0 || running)) || what+=("no task of /auth running")
    ((after_401 == 0)) || what+=("$after_401 401s after SUBSCRIBE")
    echo "FAIL framework-auth: $(printf '%s; ' "${what[@]}")$facts"
    show_log "$SDIR/baton.log" 30
    show_log "$SDIR/master.log" 20 "uthenticat|ramework|401"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 6: a register_frameworks ACL refuses roles, grants one
# ---------------------------------------------------------------------------

scenario_role_acl() {
  local secret
  secret=$(random_word)
  jq -n --arg s "$secret" '{credentials: [{principal: "baton", secret: $s}]}' >"$SDIR/credentials.json"
  chmod 600 "$SDIR/credentials.json"
  printf '%s\n' "$secret" >"$SDIR/secret"
  # baton may register with role web and nothing else. With permissive
  # false a real master refuses whatever no rule of ANY kind grants (unlike
  # mesos-local, which enforces register_frameworks only): without
  # register_agents it refuses the agent ("Not authorized to register agent
  # providing resources '...' without a principal"), without run_tasks every
  # launch is a TASK_ERROR ("Principal 'baton' no authorized to launch task
  # ... under user 'root'"), without view_frameworks and view_tasks an
  # anonymous /master/state lists no framework and no task. Those it grants.
  # Roles need no --roles, weights or quota: in Mesos 1.12 they are implicit.
  cat >"$SDIR/acls.json" <<'EOF'
{
  "permissive": false,
  "register_frameworks": [{"principals": {"values": ["baton"]}, "roles": {"values": ["web"]}}],
  "run_tasks": [{"principals": {"values": ["baton"]}, "users": {"type": "ANY"}}],
  "register_agents": [{"principals": {"type": "ANY"}, "agents": {"type": "ANY"}}],
  "view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
  "view_tasks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
  "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}]
}
EOF
  # shellcheck disable=SC2046 # the flags are words without spaces
  start_master master --registry=in_memory $(auth_flags "$SDIR/credentials.json") --acls="$SDIR/acls.json"
  start_agent agent "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agent]}"
  local reserved
  reserved=$(get "http://127.0.0.1:${PORT[master]}/master/slaves" | jq -c '.slaves[0].reserved_resources')
  log "the agent's reserved resources: $reserved (all of it is unreserved, role '*')"

  # For each refused --mesos_role: what the master answers the SUBSCRIBE
  # itself (compared with mesos-local's answer), then what Baton makes of it.
  local roles set expected answers="" differs="" baton_facts="" ok=1
  for roles in ops web,ops; do
    set=$(tr ',' '\n' <<<"$roles" | LC_ALL=C sort | paste -sd ',' - | sed 's/,/, /g')
    expected="Not authorized to register framework  with roles { $set }"
    raw_subscribe "${PORT[master]}" "$(baton_framework_info "$roles" baton)" -u "baton:$secret"
    log "master, SUBSCRIBE as baton with roles $roles: $RAW_ANSWER"
    answers+=" roles $roles: $RAW_ANSWER;"
    [[ $RAW_STATUS == 200 && $RAW_EVENTS == "ERROR $(jq -n --arg m "$expected" '$m')" && $RAW_CLOSED == 1 ]] ||
      differs+=" roles $roles: $RAW_ANSWER;"

    BATON_NAME=baton-${roles//,/-}
    local from_master
    from_master=$(($(wc -l <"$SDIR/master.log") + 1))
    start_baton "127.0.0.1:${PORT[master]}" "" --mesos_role "$roles" \
      --mesos_authentication_principal baton --mesos_authentication_secret_file "$SDIR/secret"
    local started
    started=$(now_ms)
    wait_for 60 "2 'subscription failed' lines from Baton (--mesos_role $roles)" at_least_failed . 2
    local failed named connected frameworks master_lines example
    failed=$(failed_lines .)
    # The ERROR's text as the master sent it, and both flags to check.
    named=$(failed_lines "master sent ERROR: ${expected//[\{\}]/.}; check --mesos_role and --mesos_authentication_principal")
    connected=$(baton_metric marathon_mesos_connected) || connected="?"
    frameworks=$(frameworks_on_master "${PORT[master]}") || frameworks="?"
    master_lines=$(tail -n +"$from_master" "$SDIR/master.log" |
      grep -c "Refusing subscription of framework 'marathon': ${expected//[\{\}]/.}" || true)
    example=$(failed_error .)
    log "Baton --mesos_role $roles: $failed 'subscription failed' lines in $(($(now_ms) - started)) ms, $named with the master's ERROR and both flags; marathon_mesos_connected $connected; frameworks on the master $frameworks; master's 'Refusing subscription' lines $master_lines; first error=$example"
    baton_facts+=" --mesos_role $roles: $named/$failed refusals naming the ERROR and flags, metric $connected, $frameworks frameworks on the master, $master_lines 'Refusing subscription' lines in its log (e.g. error=$example);"
    ((failed >= 2 && named == failed && master_lines >= 1)) && [[ $connected == 0 && $frameworks == 0 ]] || ok=0
    kill_pid "${PID[baton]}"
    unset 'PID[baton]'
  done

  # The granted role: Baton subscribes and launches on unreserved resources.
  BATON_NAME=baton-web
  start_baton "127.0.0.1:${PORT[master]}" "" --mesos_role web \
    --mesos_authentication_principal baton --mesos_authentication_secret_file "$SDIR/secret"
  local started subscribed=0 fw="" record="" running=0 task="" app_role=""
  started=$(now_ms)
  if wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected; then
    fw=$(framework_id) || fw=""
    if [[ -n $fw ]] && wait_for 10 "framework $fw active as baton with role web on the master" \
      framework_as "${PORT[master]}" "$fw" baton web; then
      subscribed=$(($(now_ms) - started))
    fi
    record=$(master_framework "${PORT[master]}" "$fw")
  fi
  if ((subscribed)); then
    app_role=$(post_json "$BATON/v2/apps" '{"id":"/web","cmd":"sleep 100000","cpus":0.01,"mem":16,"instances":1}' |
      jq -r '.role // "none"')
    local posted
    posted=$(now_ms)
    if wait_for 60 "/web's task TASK_RUNNING on the master" n_running_on_master "${PORT[master]}" "$fw" 1; then
      running=$(($(now_ms) - posted))
    fi
    task=$(get "http://127.0.0.1:${PORT[master]}/master/tasks" | jq -c --arg fw "$fw" '.tasks[]
      | select(.framework_id == $fw) | {state, role, resources: (.resources | {cpus, mem})}' 2>/dev/null) || task=""
  fi
  log "Baton --mesos_role web: subscribed in $((subscribed ? subscribed : -1)) ms; framework on the master: ${record:-none}; /web's role $app_role, its task on the master ${task:-none} (running $((running ? running : -1)) ms after the POST)"

  local facts="the master answered:$answers Baton:$baton_facts --mesos_role web: subscribed in $((subscribed ? subscribed : -1)) ms, framework on the master ${record:-none}, app role $app_role, task ${task:-none} running $((running ? running : -1)) ms after the POST on an agent with reserved resources $reserved"
  if [[ -z $differs ]] && ((ok && subscribed && running)); then
    echo "PASS role-acl: roles ops and web,ops refused (200 + ERROR, named in Baton's log with the flags, nothing registered), role web subscribed and ran a task on unreserved resources; the master answers as mesos-local does; $facts"
  else
    local what=()
    [[ -n $differs ]] && what+=("the master answered otherwise than mesos-local:$differs")
    ((ok)) || what+=("a refused role was not reported as expected")
    ((subscribed)) || what+=("Baton with --mesos_role web not subscribed as baton/web")
    ((subscribed == 0 || running)) || what+=("no task of /web running")
    echo "FAIL role-acl: $(printf '%s; ' "${what[@]}")$facts"
    show_log "$SDIR/$BATON_NAME.log" 30
    show_log "$SDIR/master.log" 20 "Refusing|uthoriz|Not authorized"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

RESULTS=()
# ---------------------------------------------------------------------------
# Scenario 7: a task over its memory under the cgroups isolators
# ---------------------------------------------------------------------------

# The cgroups the scenario's agent made (under a root named for this run).
CGROUPS_ROOT="baton-conformance-$$"

# Kills what is left in the scenario's cgroups and removes them.
remove_cgroups() {
  local c f pid
  for c in /sys/fs/cgroup/*/; do
    [[ -d $c$CGROUPS_ROOT ]] || continue
    while read -r f; do
      while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$f"
    done < <(find "$c$CGROUPS_ROOT" -name cgroup.procs)
    find "$c$CGROUPS_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# The task status lines Baton logged for the app's tasks.
status_lines() { plain "$SDIR/baton.log" | grep 'task status' | grep "task_id=$1\." || true; }
memory_failure_logged() { status_lines hog | grep -q 'state="TASK_FAILED"'; }

scenario_memory_limit() {
  AGENT_ISOLATION=(--launcher=linux --isolation=cgroups/cpu,cgroups/mem
    --cgroups_hierarchy=/sys/fs/cgroup --cgroups_root="$CGROUPS_ROOT")
  trap 'stop_scenario; remove_cgroups' EXIT
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agentA]}"
  start_baton "127.0.0.1:${PORT[master]}"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  # 32 MB for the task and 32 for baton-executor: a 64 MB container in
  # which the task touches 96.
  post_json "$BATON/v2/apps" '{"id":"/hog","cpus":0.1,"mem":32,"backoffSeconds":1,"backoffFactor":1.0,
    "cmd":"python3 -c '"'"'import time; x = b\"\\x01\" * (96 << 20); time.sleep(600)'"'"'"}' >/dev/null
  wait_for 60 "a task of /hog to fail" memory_failure_logged
  local line message
  line=$(status_lines hog | grep 'state="TASK_FAILED"' | head -n 1)
  message=$(get "$BATON/v2/apps/hog" | jq -r '.app.lastTaskFailure.message // empty' | head -n 1)
  log "Baton logged: ${line#*task status }"
  log "lastTaskFailure.message (first line): $message"
  if [[ $line == *'reason="REASON_CONTAINER_LIMITATION_MEMORY"'* && $line == *'source="SOURCE_AGENT"'* &&
    $message == "Memory limit exceeded: Requested: 64MB Maximum Used: "* ]]; then
    echo "PASS memory-limit: TASK_FAILED REASON_CONTAINER_LIMITATION_MEMORY from SOURCE_AGENT, \"$message\" (mesos-local's cgroups isolation answers the same: e2e faults::a_task_over_its_memory_limit_...)"
  else
    echo "FAIL memory-limit: wanted TASK_FAILED REASON_CONTAINER_LIMITATION_MEMORY from SOURCE_AGENT with \"Memory limit exceeded: Requested: 64MB ...\"; got: ${line#*task status } / $message"
    show_log "$SDIR/agentA.log" 30 'imit|OOM|oom'
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 8: dynamic reservations and persistent volumes, real master vs mesos-local
# ---------------------------------------------------------------------------

write_pv_driver() {
  cat >"$ROOT/pv-driver.py" <<'PYEOF'
#!/usr/bin/env python3
"""A v1 scheduler for real-mesos-conformance.sh's persistent-volume scenario.

    persistent-volume-driver.py HOST:PORT AGENT_URL ROLE pre|post VOLUME_DIR

Subscribes as a framework of ROLE (with RESERVATION_REFINEMENT for `post`),
then through ACCEPT calls: RESERVE + CREATE a volume, LAUNCH a task writing
into it, LAUNCH one reading it back, tries five invalid operations, DESTROY
+ UNRESERVE, and reads /master/state, /master/slaves and the agent's /state
on the way. It prints one `FACT name: value` line per observation (offers'
resource formats, task states, what each operation did, endpoint fields),
so that the script can compare a real Mesos master with mesos-local line by
line. VOLUME_DIR is where the agent keeps the volume (checked to exist, and
to be gone after DESTROY). Every wait has a deadline. Python 3 stdlib only.
"""
import http.client
import json
import os
import queue
import sys
import threading
import time

MASTER, AGENT_URL, ROLE, MODE, VOLUME_DIR = sys.argv[1:6]
HOST, PORT = MASTER.rsplit(":", 1)
PRINCIPAL = "pv-principal"
DEADLINE = 60
events = queue.Queue()
state = {}


def fact(name, value):
    print(f"FACT {name}: {json.dumps(value, sort_keys=True)}", flush=True)


def reader(body):
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=300)
    conn.request("POST", "/api/v1/scheduler", json.dumps(body),
                 {"Content-Type": "application/json", "Accept": "application/json"})
    resp = conn.getresponse()
    state["stream"] = resp.getheader("Mesos-Stream-Id")
    while True:
        line = b""
        while not line.endswith(b"\n"):
            ch = resp.read(1)
            if not ch:
                return
            line += ch
        events.put(json.loads(resp.read(int(line))))


def call(body):
    body["framework_id"] = {"value": state["fid"]}
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
    conn.request("POST", "/api/v1/scheduler", json.dumps(body),
                 {"Content-Type": "application/json", "Mesos-Stream-Id": state["stream"]})
    resp = conn.getresponse()
    text = resp.read().decode()
    if resp.status != 202:
        raise SystemExit(f"{body['type']} answered {resp.status}: {text}")


def get(url):
    host, rest = url.split("//", 1)[1].split("/", 1)
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=10)
    conn.request("GET", "/" + rest)
    return json.loads(conn.getresponse().read())


def next_event(pred, what):
    end = time.time() + DEADLINE
    while time.time() < end:
        try:
            ev = events.get(timeout=max(0.1, end - time.time()))
        except queue.Empty:
            break
        if ev.get("type") == "UPDATE":
            st = ev["update"]["status"]
            if "uuid" in st:
                call({"type": "ACKNOWLEDGE", "acknowledge": {
                    "agent_id": st["agent_id"], "task_id": st["task_id"], "uuid": st["uuid"]}})
        if pred(ev):
            return ev
    raise SystemExit(f"timed out waiting for {what}")


def offer(pred=lambda o: True, what="an offer"):
    """The next offer passing pred; other offers are declined at once."""
    while True:
        ev = next_event(lambda e: e.get("type") == "OFFERS", what)
        for o in ev["offers"]["offers"]:
            if pred(o):
                return o
            call({"type": "DECLINE", "decline": {"offer_ids": [o["id"]],
                                                 "filters": {"refuse_seconds": 0}}})


def reserved(r):
    return bool(r.get("reservations")) or r.get("role", "*") != "*"


def volume(r):
    return "persistence" in r.get("disk", {})


def scalar(o, name, pred):
    return round(sum(r["scalar"]["value"] for r in o["resources"]
                     if r["name"] == name and pred(r)), 3)


def strip(r):
    r = dict(r)
    r.pop("allocation_info", None)
    return r


def accept(o, ops):
    call({"type": "ACCEPT", "accept": {"offer_ids": [o["id"]], "operations": ops,
                                         "filters": {"refuse_seconds": 0}}})


def reservation(r):
    """Resource r reserved for ROLE by PRINCIPAL, in this mode's format."""
    r = strip(r)
    r.pop("role", None)
    if MODE == "post":
        r["reservations"] = [{"type": "DYNAMIC", "role": ROLE, "principal": PRINCIPAL}]
    else:
        r["role"] = ROLE
        r["reservation"] = {"principal": PRINCIPAL}
    return r


def scalar_res(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def vol(disk, pid):
    v = dict(disk)
    v["disk"] = {"persistence": {"id": pid, "principal": PRINCIPAL},
                 "volume": {"container_path": "data", "mode": "RW"}}
    return v


def summary(o):
    """What an offer holds, by kind."""
    return {
        "reserved_cpus": scalar(o, "cpus", reserved),
        "reserved_mem": scalar(o, "mem", reserved),
        "reserved_plain_disk": scalar(o, "disk", lambda r: reserved(r) and not volume(r)),
        "volumes": sorted(r["disk"]["persistence"]["id"] for r in o["resources"] if volume(r)),
        "other_roles": sorted({(r.get("reservations") or [{}])[-1].get("role", r.get("role"))
                               for r in o["resources"] if reserved(r)} - {ROLE}),
    }


def run_task(o, tid, cmd, resources):
    accept(o, [{"type": "LAUNCH", "launch": {"task_infos": [{
        "name": tid, "task_id": {"value": tid}, "agent_id": o["agent_id"],
        "resources": resources, "command": {"value": cmd}}]}}])
    ev = next_event(lambda e: e.get("type") == "UPDATE"
                    and e["update"]["status"]["task_id"]["value"] == tid
                    and e["update"]["status"]["state"] in
                    ("TASK_FINISHED", "TASK_FAILED", "TASK_ERROR", "TASK_LOST",
                     "TASK_DROPPED", "TASK_KILLED"), f"{tid} to end")
    return ev["update"]["status"]["state"]


def main():
    info = {"user": os.environ.get("USER", "root"), "name": f"pv-{MODE}",
            "principal": PRINCIPAL, "roles": [ROLE],
            "capabilities": [{"type": "MULTI_ROLE"}]}
    if MODE == "post":
        info["capabilities"].append({"type": "RESERVATION_REFINEMENT"})
    threading.Thread(target=reader, args=({"type": "SUBSCRIBE", "subscribe": {
        "framework_info": info}},), daemon=True).start()
    ev = next_event(lambda e: e.get("type") == "SUBSCRIBED", "SUBSCRIBED")
    state["fid"] = ev["subscribed"]["framework_id"]["value"]

    o = offer(lambda o: scalar(o, "disk", lambda r: True) >= 128)
    cpus = [r for r in o["resources"] if r["name"] == "cpus"][0]
    fact("unreserved resource fields", sorted(k for k in strip(cpus) if k not in ("scalar",)))
    fact("unreserved role", cpus.get("role"))
    res = [reservation(scalar_res("cpus", 0.5)), reservation(scalar_res("mem", 64)),
           reservation(scalar_res("disk", 96))]
    accept(o, [{"type": "RESERVE", "reserve": {"resources": res}},
               {"type": "CREATE", "create": {"volumes": [vol(reservation(scalar_res("disk", 32)), "vol1")]}}])

    o = offer(lambda o: any(volume(r) for r in o["resources"]), "an offer with the volume")
    fact("after RESERVE+CREATE", summary(o))
    v = [strip(r) for r in o["resources"] if volume(r)][0]
    fact("offered volume", v)
    rcpu = [strip(r) for r in o["resources"] if r["name"] == "cpus" and reserved(r)][0]
    fact("offered reserved cpus", rcpu)
    fact("volume dir exists after CREATE", os.path.isdir(VOLUME_DIR))
    task_res = [reservation(scalar_res("cpus", 0.5)), reservation(scalar_res("mem", 64)), v]
    fact("writer", run_task(o, "writer", "echo hello > data/f", task_res))

    o = offer(lambda o: any(volume(r) for r in o["resources"]), "the volume re-offered")
    fact("after writer", summary(o))
    m = get(f"http://{MASTER}/master/state")["slaves"][0]
    fact("/master/state slave fields", sorted(k for k in m if "resources" in k))
    fact("/master/state reserved_resources", m.get("reserved_resources"))
    try:
        s = get(f"http://{MASTER}/master/slaves")["slaves"][0]
        fact("/master/slaves slave fields", sorted(k for k in s if "resources" in k))
        full = s.get("reserved_resources_full", {}).get(ROLE, [])
        fact("/master/slaves volume", sorted([strip(r) for r in full if volume(r)], key=json.dumps))
    except Exception as e:  # noqa: BLE001 - reported as a fact
        fact("/master/slaves", f"unreadable: {e}")
    a = get(f"{AGENT_URL}/state")
    fact("agent /state fields", sorted(k for k in a if "resources" in k and "allocated" not in k))
    fact("agent /state reserved_resources", a.get("reserved_resources"))
    fact("reader", run_task(o, "reader", 'test "$(cat data/f)" = hello', task_res))

    # Invalid operations: each dropped or not, as the next offer shows.
    plain_disk = reservation(scalar_res("disk", 64))
    unres_disk = scalar_res("disk", 16)
    cases = [
        ("CREATE with a taken persistence id",
         {"type": "CREATE", "create": {"volumes": [vol(plain_disk, "vol1")]}}),
        ("CREATE on unreserved disk",
         {"type": "CREATE", "create": {"volumes": [vol(unres_disk, "vol2")]}}),
        ("RESERVE for another role",
         {"type": "RESERVE", "reserve": {"resources": [dict(reservation(scalar_res("cpus", 0.1)),
                                                            **({"reservations": [{"type": "DYNAMIC", "role": "other", "principal": PRINCIPAL}]} if MODE == "post" else {"role": "other"}))]}}),
        ("RESERVE by another principal",
         {"type": "RESERVE", "reserve": {"resources": [dict(reservation(scalar_res("cpus", 0.1)),
                                                            **({"reservations": [{"type": "DYNAMIC", "role": ROLE, "principal": "someone"}]} if MODE == "post" else {"reservation": {"principal": "someone"}}))]}}),
        ("UNRESERVE of the volume",
         {"type": "UNRESERVE", "unreserve": {"resources": [v]}}),
    ]
    for name, op in cases:
        o = offer(lambda o: any(volume(r) for r in o["resources"]), "the volume re-offered")
        accept(o, [op])
        o = offer(lambda o: any(volume(r) for r in o["resources"]), "the volume re-offered")
        fact(f"after {name}", summary(o))
        call({"type": "DECLINE", "decline": {"offer_ids": [o["id"]], "filters": {"refuse_seconds": 0}}})

    o = offer(lambda o: any(volume(r) for r in o["resources"]), "the volume re-offered")
    accept(o, [{"type": "DESTROY", "destroy": {"volumes": [v]}},
               {"type": "UNRESERVE", "unreserve": {"resources": res}}])
    o = offer(lambda o: scalar(o, "disk", lambda r: True) >= 128)
    fact("after DESTROY+UNRESERVE", summary(o))
    fact("volume dir exists after DESTROY", os.path.isdir(VOLUME_DIR))
    call({"type": "TEARDOWN"})


main()
PYEOF
}

# run_pv_driver MASTER AGENT_URL VOLUME_ROOT OUT: both modes, one role each.
run_pv_driver() {
  local master=$1 agent=$2 vroot=$3 out=$4 mode
  : >"$out"
  for mode in pre post; do
    echo "MODE $mode" >>"$out"
    timeout 300 python3 "$ROOT/pv-driver.py" "$master" "$agent" "pv-$mode" "$mode" "$vroot/pv-$mode/vol1" >>"$out" 2>&1 || return 1
  done
}

scenario_persistent_volume() {
  command -v python3 >/dev/null || { echo "FAIL persistent-volume: needs python3"; return 1; }
  write_pv_driver
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agentA]}"
  local real=$SDIR/real.facts local_=$SDIR/local.facts ok=1
  run_pv_driver "127.0.0.1:${PORT[master]}" "http://127.0.0.1:${PORT[agentA]}" \
    "$SDIR/agentA/work/volumes/roles" "$real" || { ok=0; log "the driver failed against the real master"; }
  kill_pid "${PID[agentA]}"; kill_pid "${PID[master]}"; unset 'PID[agentA]' 'PID[master]'

  PORT[local]=$(free_port)
  spawn "$SDIR/local" "$SDIR/local.log" "$MESOS_LOCAL_BIN" --port "${PORT[local]}" --agents 1 --racks 1 \
    --disk 4096 --work_dir "$SDIR/local/work" --executor_path "$EXECUTOR_BIN"
  PID[local]=$SPAWNED
  wait_for 60 "mesos-local up" get "http://127.0.0.1:${PORT[local]}/master/state"
  local agent_url
  agent_url=http://$(get "http://127.0.0.1:${PORT[local]}/master/state" | jq -r '.slaves[0].pid | sub("^slave\\(1\\)@"; "")')
  run_pv_driver "127.0.0.1:${PORT[local]}" "$agent_url" "$SDIR/local/work/volumes/agent-1/roles" "$local_" ||
    { ok=0; log "the driver failed against mesos-local"; }

  local differs
  differs=$(diff <(grep -E '^(MODE|FACT)' "$real") <(grep -E '^(MODE|FACT)' "$local_") || true)
  log "real Mesos:"; grep -E '^(MODE|FACT)' "$real" | sed 's/^/  /'
  if ((ok)) && [[ -z $differs ]]; then
    echo "PASS persistent-volume: reserve+create, write, read back, 5 invalid operations dropped, destroy+unreserve; pre- and post-refinement formats; mesos-local gives the same $(grep -c '^FACT' "$real") facts as the real master"
  else
    echo "FAIL persistent-volume: mesos-local differs from the real master (< real, > mesos-local):"
    echo "$differs"
    tail -n 5 "$real" "$local_"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 9: a resident app of Baton's, real master vs mesos-local
# ---------------------------------------------------------------------------

# The resident app: role db, one 16 MB volume at data; each incarnation
# appends its task id to data/history.
# shellcheck disable=SC2016 # $MESOS_TASK_ID is the task's to expand
RESIDENT_APP='{"id":"/db","cmd":"echo \"$MESOS_TASK_ID\" >> data/history && sleep 100000",
  "cpus":0.1,"mem":32,"disk":0,"instances":1,"role":"db","backoffSeconds":1,"backoffFactor":1.0,
  "container":{"type":"MESOS","volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":16}}]}}'

absent() { [[ ! -e $1 ]]; }
rfact() { printf 'FACT %s: %s\n' "$1" "$2"; }

# The one TASK_RUNNING task of /db as "<id> <agentId>" ('' if none or several).
db_running() {
  get "$BATON/v2/apps/db/tasks" | jq -r '[.tasks[] | select(.state == "TASK_RUNNING")]
    | if length == 1 then "\(.[0].id) \(.[0].slaveId)" else "" end'
}
db_is_running() { [[ -n $(db_running) ]]; }
db_running_other_than() { local t; t=$(db_running) && [[ -n $t && ${t%% *} != "$1" ]]; }
db_has_no_task() { [[ $(get "$BATON/v2/apps/db/tasks" 2>/dev/null | jq '.tasks | length' 2>/dev/null || echo gone) =~ ^(0|gone)$ ]]; }

# The first agent of the master at MASTER_URL in /master/state.
master_agent() { get "$1/master/state" 5 | jq -c '.slaves[0]'; }

# Reserved resources of role db on the master's first agent, ports as a count.
reserved_db() {
  master_agent "$1" | jq -S -c '(.reserved_resources.db // {}) | with_entries(
    if .key == "ports" then .value = ([.value | scan("([0-9]+)-([0-9]+)") | (.[1] | tonumber) - (.[0] | tonumber) + 1] | add // 0)
    else . end)'
}
db_unreserved() { [[ $(master_agent "$1" | jq -c '.reserved_resources.db // {} | [.[] | select(type != "number" or . > 0)] | length') == 0 ]]; }

# What /master/slaves says of db's reservation: each resource with the
# framework id, the instance id and port numbers replaced by names.
reserved_db_full() { # MASTER_URL FW INSTANCE
  get "$1/master/slaves" 5 | jq -S -c --arg fw "$2" --arg inst "$3" '[.slaves[0].reserved_resources_full.db // [] | .[]
    | del(.allocation_info) | walk(if type == "string" then (gsub($fw; "<fw>") | gsub($inst; "<instance>")) else . end)
    | if .name == "ports" then .ranges.range |= map({count: (.end - .begin + 1)}) else . end]
    | sort_by(.name, (.disk != null))'
}

# The sandbox of the executor that runs TASK on the agent at AGENT_URL.
sandbox_of() { # AGENT_URL TASK
  get "$1/state" 5 | jq -r --arg t "$2" '[.frameworks[].executors[]
    | select(any(((.tasks // []) + (.queued_tasks // []) + (.completed_tasks // []))[]; .id == $t) or .id == $t) | .directory][0] // empty'
}

# What the agent's /files/read answers for data/history in TASK's sandbox
# (the volume is a symlink out of the sandbox there): "<status> <body>",
# the sandbox's path written <sandbox>.
history_via_files() { # AGENT_URL TASK
  local dir answer
  dir=$(sandbox_of "$1" "$2")
  answer=$(curl -sS --max-time 5 -w ' %{http_code}' -G "$1/files/read" \
    --data-urlencode "path=$dir/data/history" --data-urlencode offset=0 --data-urlencode length=100000)
  printf '%s %s' "${answer##* }" "$(printf '%s' "${answer% *}" | tr '\n' ' ' | sed "s|$dir|<sandbox>|g; s/ *$//")"
}

# The lines of data/history, as TASK's sandbox shows it on disk (through
# its link to the volume), on one line.
history_on_disk() { # AGENT_URL TASK
  local dir
  dir=$(sandbox_of "$1" "$2") && [[ -n $dir ]] || return 1
  paste -sd ' ' "$dir/data/history" 2>/dev/null
}
history_is() { [[ $(history_on_disk "$1" "$2") == "$3" ]]; }

# resident_run MASTER_URL AGENT_URL VOLUME_ROOT MASTER_LOG: Baton (started by
# the caller) against a master; prints FACT lines.
resident_run() {
  local murl=$1 aurl=$2 vroot=$3 fw first second agent1 agent2 inst pid dir
  fw=$(framework_id)
  rfact "framework roles" "$(get "$murl/master/state" 5 | jq -c --arg fw "$fw" '.frameworks[] | select(.id == $fw) | .roles')"
  post_json "$BATON/v2/apps" "$RESIDENT_APP" >/dev/null
  wait_for 90 "the resident task of /db TASK_RUNNING" db_is_running || return 1
  read -r first agent1 <<<"$(db_running)"
  log "first incarnation $first on $agent1"
  inst=$(get "$murl/master/slaves" 5 | jq -r '[.slaves[0].reserved_resources_full.db // [] | .[]
    | (.reservations[-1] // .reservation).labels.labels[]? | select(.key == "baton_instance_id") | .value][0] // empty')
  pid=$(get "$murl/master/slaves" 5 | jq -r '[.slaves[0].reserved_resources_full.db // [] | .[]
    | .disk.persistence.id? // empty][0] // empty')
  rfact "persistence id" "${pid//$inst/<instance>}"
  rfact "instance in the reservation label is the task's" "$([[ -n $inst && $first == "$inst"* ]] && echo yes || echo "no ($inst vs $first)")"
  rfact "reserved for db after the first launch" "$(reserved_db "$murl")"
  rfact "reservation in /master/slaves" "$(reserved_db_full "$murl" "$fw" "$inst")"
  dir=$vroot/db/$pid
  rfact "volume directory on the agent" "$([[ -d $dir ]] && echo "exists, mode $(stat -c %a "$dir")" || echo missing)"
  local sandbox
  sandbox=$(sandbox_of "$aurl" "$first")
  rfact "data in the sandbox" "$(if [[ -L $sandbox/data ]]; then [[ $(readlink -f "$sandbox/data") == "$(readlink -f "$dir")" ]] && echo "symlink to the volume" || echo "symlink elsewhere"; elif [[ -d $sandbox/data ]]; then echo directory; else echo missing; fi)"
  wait_for 30 "data/history to hold the first id" history_is "$aurl" "$first" "$first" || true
  rfact "history after the first incarnation" "$(history_on_disk "$aurl" "$first" | sed "s/$first/<first>/g")"
  rfact "/files/read of data/history in the sandbox" "$(history_via_files "$aurl" "$first" | sed "s/$first/<first>/g")"
  rfact "Baton's localVolumes" "$(get "$BATON/v2/apps/db/tasks" | jq -S -c --arg inst "$inst" '[.tasks[0].localVolumes[]?
    | walk(if type == "string" then gsub($inst; "<instance>") else . end)
    | .uuid |= (if test("^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$") then "<uuid>" else . end)]')"

  curl -fsS --max-time 10 -X DELETE "$BATON/v2/apps/db/tasks/$first" >/dev/null
  local t0 took
  t0=$(now_ms)
  wait_for 90 "the next incarnation of /db TASK_RUNNING" db_running_other_than "$first" || return 1
  read -r second agent2 <<<"$(db_running)"
  log "second incarnation $second on $agent2, running $(($(now_ms) - t0)) ms after the kill"
  rfact "next incarnation on the same agent" "$([[ $agent1 == "$agent2" ]] && echo yes || echo no)"
  # The ended container's link to the volume: a real agent removes it when
  # it destroys the container.
  wait_for 15 "the first sandbox's link to the volume removed" absent "$sandbox/data" || true
  rfact "data in the first sandbox after its task ended" "$(if [[ -L $sandbox/data ]]; then echo symlink; elif [[ -e $sandbox/data ]]; then echo exists; else echo gone; fi)"
  rfact "the running task on the master" "$(get "$murl/master/state" 5 | jq -S -c --arg t "$second" '.frameworks[].tasks[]
    | select(.id == $t) | {state, role, resources: (.resources | with_entries(if .key == "ports" then .value |= (. | type) else . end))}')"
  wait_for 30 "data/history to hold both ids" history_is "$aurl" "$second" "$first $second" || true
  rfact "history after the restart" "$(history_on_disk "$aurl" "$second" | sed "s/$first/<first>/g; s/$second/<second>/g")"
  rfact "history in the volume's directory" "$(sed "s/$first/<first>/; s/$second/<second>/" "$dir/history" 2>/dev/null | paste -sd ' ')"
  rfact "reserved for db after the restart" "$(reserved_db "$murl")"

  curl -fsS --max-time 10 -X DELETE "$BATON/v2/apps/db" >/dev/null
  wait_for 60 "/db gone from Baton" db_has_no_task || return 1
  t0=$(now_ms)
  wait_for 90 "the reservation of db freed on the master" db_unreserved "$murl" || true
  took=$(($(now_ms) - t0))
  log "reservation freed ${took} ms after /db was gone"
  rfact "reserved for db after DELETE" "$(reserved_db "$murl")"
  rfact "reserved_resources after DELETE" "$(master_agent "$murl" | jq -c '.reserved_resources')"
  wait_for 30 "the volume directory removed" absent "$dir" || true
  rfact "volume directory after DELETE" "$([[ -e $dir ]] && echo exists || echo gone)"
}

# resident_runs MASTER_ADDR AGENT_URL VOLUME_ROOT NAME OUT: resident_run
# twice against one cluster, each time with a fresh Baton (its own data
# dir, so a new framework): without a principal, then with
# --mesos_authentication_principal baton (the master has no authentication:
# the principal is only set in FrameworkInfo and so on the reservations and
# volumes). Baton logs to $SDIR/NAME-<mode>.log.
resident_runs() {
  local master=$1 agent=$2 vroot=$3 name=$4 out=$5 mode rc=0
  : >"$out"
  for mode in no-principal principal; do
    local flags=(--mesos_role '*,db')
    [[ $mode == principal ]] && flags+=(--mesos_authentication_principal baton)
    BATON_NAME=$name-$mode start_baton "$master" "" "${flags[@]}"
    wait_for 60 "Baton ($mode) subscribed to $master" baton_connected || return 1
    echo "MODE $mode" | tee -a "$out"
    resident_run "http://$master" "$agent" "$vroot" | tee -a "$out" || rc=1
    kill_pid "${PID[baton]}"
    unset 'PID[baton]'
  done
  return "$rc"
}

scenario_resident_app() {
  local real=$SDIR/real.facts local_=$SDIR/local.facts ok=1
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agentA]}"
  resident_runs "127.0.0.1:${PORT[master]}" "http://127.0.0.1:${PORT[agentA]}" \
    "$SDIR/agentA/work/volumes/roles" baton "$real" || { ok=0; log "a run against the real master stopped early"; }
  local dropped
  dropped=$(plain "$SDIR/master.log" | grep -E 'Dropping|Failed to validate|[Ii]nvalid|TASK_ERROR|TASK_DROPPED' || true)
  kill_pid "${PID[agentA]}"; kill_pid "${PID[master]}"
  unset 'PID[agentA]' 'PID[master]'
  kill_under "$SDIR/agentA" || true

  PORT[local]=$(free_port)
  spawn "$SDIR/local" "$SDIR/local.log" "$MESOS_LOCAL_BIN" --port "${PORT[local]}" --agents 1 --racks 1 \
    --disk 4096 --work_dir "$SDIR/local/work" --executor_path "$EXECUTOR_BIN"
  PID[local]=$SPAWNED
  wait_for 60 "mesos-local up" get "http://127.0.0.1:${PORT[local]}/master/state"
  local agent_url
  agent_url=http://$(get "http://127.0.0.1:${PORT[local]}/master/state" | jq -r '.slaves[0].pid | sub("^slave\\(1\\)@"; "")')
  resident_runs "127.0.0.1:${PORT[local]}" "$agent_url" "$SDIR/local/work/volumes/agent-1/roles" baton-local "$local_" ||
    { ok=0; log "a run against mesos-local stopped early"; }

  local differs
  differs=$(diff <(grep -E '^(MODE|FACT)' "$real") <(grep -E '^(MODE|FACT)' "$local_") || true)
  log "real Mesos:"; grep -E '^(MODE|FACT)' "$real" | sed 's/^/  /'
  if [[ -n $dropped ]]; then
    log "the master's log on Baton's operations:"
    printf '  %s\n' "${dropped//$'\n'/$'\n'  }"
  fi
  # What Baton must achieve on the real master, in both modes.
  local good=1 want
  for want in 'history after the restart: <first> <second>' 'reserved for db after DELETE: {}' \
    'volume directory after DELETE: gone' 'next incarnation on the same agent: yes'; do
    [[ $(grep -cxF "FACT $want" "$real") == 2 ]] || { good=0; log "on the real master, not twice: $want"; }
  done
  if ((ok && good)) && [[ -z $differs && -z $dropped ]]; then
    echo "PASS resident-app: reserve+create+launch in role db, a killed task relaunched on the same agent and volume (history holds both ids), reservation and volume freed after DELETE, without and with a principal; the master dropped nothing; mesos-local gives the same $(grep -c '^FACT' "$real") facts as the real master"
  else
    echo "FAIL resident-app:$( ((ok)) || echo " a run stopped early;")$( ((good)) || echo " Baton misbehaved on the real master;")${dropped:+ the master logged drops (above);}${differs:+ mesos-local differs from the real master (< real, > mesos-local):}"
    [[ -n $differs ]] && echo "$differs"
    local f
    for f in "$SDIR"/baton*.log; do show_log "$f" 20 'WARN|ERROR|reserv|volume'; done
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 10: a pod (LAUNCH_GROUP) under the default executor, real master vs mesos-local
# ---------------------------------------------------------------------------

# The agent flags pods need: the default executor launches each container as
# a nested container (the posix launcher and isolators can), and the
# volume/sandbox_path isolator makes the pod's ephemeral volume (a
# SANDBOX_PATH volume of type PARENT) a link from each container's sandbox to
# the executor's (filesystem/posix; a bind mount needs --launcher=linux and
# filesystem/linux).
POD_AGENT_ISOLATION=(--launcher=posix --isolation=filesystem/posix,volume/sandbox_path,posix/cpu,posix/mem)

# pod_json ID INSTANCES TEXT: `writer` writes "TEXT <its task id>" into the
# shared volume, `server` serves the volume with python3 -m http.server on
# its endpoint, health-checked over HTTP.
pod_json() {
  jq -n --arg id "$1" --argjson n "$2" --arg text "$3" '{
    id: $id, volumes: [{name: "shared"}], scaling: {kind: "fixed", instances: $n},
    containers: [
      {name: "writer", resources: {cpus: 0.05, mem: 32},
       exec: {command: {shell: ("echo \"" + $text + " $MESOS_TASK_ID\" > out/index.html; while :; do sleep 1; done")}},
       volumeMounts: [{name: "shared", mountPath: "out"}]},
      {name: "server", resources: {cpus: 0.05, mem: 32},
       exec: {command: {shell: "cd www && exec python3 -m http.server \"$ENDPOINT_HTTP\" --bind 0.0.0.0"}},
       endpoints: [{name: "http", hostPort: 0}],
       healthCheck: {http: {endpoint: "http", path: "/index.html"}, gracePeriodSeconds: 30,
                     intervalSeconds: 2, timeoutSeconds: 1, maxConsecutiveFailures: 3, delaySeconds: 0},
       volumeMounts: [{name: "shared", mountPath: "www", readOnly: true}]}]}'
}

# HTTP status code of a request (000 when nothing answered).
http_code() { # METHOD URL [BODY]
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$2" 2>/dev/null || true
}

# Whether pod ID has exactly N instances, each STABLE with both containers
# TASK_RUNNING and the server healthy, each serving "TEXT <its writer's task id>".
pod_serving() { # ID N TEXT
  local st host port writer
  st=$(get "$BATON/v2/pods/$1::status") || return 1
  jq -e --argjson n "$2" '(.instances | length) == $n and all(.instances[]; .status == "STABLE"
    and ([.containers[].status] == ["TASK_RUNNING", "TASK_RUNNING"])
    and ([.containers[] | select(.name == "server") | .conditions[]? | select(.name == "healthy") | .value] == ["true"]))' \
    <<<"$st" >/dev/null || return 1
  while read -r host port writer; do
    [[ $(get "http://$host:$port/index.html") == "$3 $writer" ]] || return 1
  done < <(jq -r '.instances[] | "\(.agentHostname) \(.containers[] | select(.name == "server") | .endpoints[0].allocatedHostPort) \(.containers[] | select(.name == "writer") | .containerId)"' <<<"$st")
}

# The framework's tasks on the master as {name, state, the states it went
# through (consecutive repeats dropped, "+healthy" when the update said so)}.
master_pod_tasks() { # MASTER_URL FW
  get "$1/master/state" 5 | jq -c --arg fw "$2" '[.frameworks[] | select(.id == $fw) | .tasks[]
    | {name, state, through: ([.statuses[] | .state + (if .healthy == true then "+healthy" elif .healthy == false then "+unhealthy" else "" end)]
        | reduce .[] as $s ([]; if (length > 0 and .[-1] == $s) then . else . + [$s] end))}] | sort_by(.name)'
}
master_pod_executors() { # MASTER_URL FW
  get "$1/master/state" 5 | jq -c --arg fw "$2" '[.frameworks[] | select(.id == $fw) | .executors[]
    | {type: (.type // null), command: (.command | keys? // null), container: (.container.type // null), resources: ([.resources | to_entries[] | select(.value != 0 and (.value | type) == "number") | .key] | sort)}]'
}
master_active_tasks() { # MASTER_URL FW
  get "$1/master/state" 5 | jq --arg fw "$2" '[.frameworks[] | select(.id == $fw) | .tasks[]] | length'
}
master_executor_count() { # MASTER_URL FW
  get "$1/master/state" 5 | jq --arg fw "$2" '[.frameworks[] | select(.id == $fw) | .executors[]] | length'
}
master_tasks_gone() { [[ $(master_active_tasks "$1" "$2") == 0 ]]; }
master_executors_gone() { [[ $(master_executor_count "$1" "$2") == 0 ]]; }
pod_status_gone() { [[ $(http_code GET "$BATON/v2/pods/$1::status") == 404 ]]; }

# Pids of processes under DIR (see procs_under) running CMD_PATTERN.
procs_running() { # DIR PATTERN
  local pid
  for pid in $(procs_under "$1"); do
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qE -- "$2" && echo "$pid"
  done
  return 0
}
no_procs_running() { [[ -z $(procs_running "$1" "$2") ]]; }

# The states Baton logged for each task of container NAME of pod ID (task
# ids <pod>.instance-<uuid>.<container>.<n>), consecutive repeats dropped:
# the distinct sequences, sorted, joined by " | " (two instances' updates
# interleave in any order, each task's own do not).
baton_container_states() { # BATON_LOG POD_ID_DOTTED CONTAINER
  plain "$1" | grep 'task status' |
    sed -nE "s/.*task_id=($2\.instance-[^ ]*\.$3\.[0-9]+) .*state=\"([A-Z_]+)\".*/\1 \2/p" |
    awk '{ if (last[$1] != $2) { seq[$1] = seq[$1] (seq[$1] == "" ? "" : " ") $2; last[$1] = $2 } }
      END { for (t in seq) print seq[t] }' | sort -u | paste -sd'|' | sed 's/|/ | /g' || true
}

# run_pod LABEL MASTER_URL AGENT_DIR FACTS: the pod's whole life through
# Baton ($BATON), one `FACT name: value` line per observation into FACTS.
run_pod() {
  local label=$1 master=$2 agent_dir=$3 facts=$4 fw text code st
  fact() { echo "FACT $1: $2" | tee -a "$facts"; }
  fw=$(framework_id)
  text="hello-from-$label"
  log "[$label] framework $fw"

  code=$(http_code POST "$BATON/v2/pods" "$(pod_json /web 1 "$text")")
  fact "POST /v2/pods" "$code"
  if ! wait_for 120 "[$label] /web: 1 instance STABLE, both containers running, server healthy, serving the writer's page" \
    pod_serving web 1 "$text"; then
    fact "1 instance stable and serving" "no: $(get "$BATON/v2/pods/web::status" | jq -c '[.instances[]? | {status, containers: [.containers[] | {name, status, conditions}]}]')"
    return 1
  fi
  st=$(get "$BATON/v2/pods/web::status")
  fact "1 instance stable and serving" "yes"
  fact "pod status" "$(jq -c '{status, instances: [.instances[] | {status, containers: [.containers[] | {name, status, healthy: ([.conditions[]? | select(.name == "healthy") | .value] | first)}]}]}' <<<"$st")"
  fact "page" "$(get "http://$(jq -r '.instances[0].agentHostname' <<<"$st"):$(jq -r '.instances[0].containers[] | select(.name == "server") | .endpoints[0].allocatedHostPort' <<<"$st")/index.html" | sed -E 's/instance-[0-9a-f-]+/instance-<uuid>/')"
  fact "index.html files in the agent's sandboxes" "$(find "$agent_dir" -path '*/volumes/shared/index.html' 2>/dev/null | wc -l)"
  fact "master tasks" "$(master_pod_tasks "$master" "$fw")"
  fact "master executors" "$(master_pod_executors "$master" "$fw")"

  code=$(http_code PUT "$BATON/v2/pods/web" "$(pod_json /web 2 "$text")")
  fact "PUT /v2/pods/web (2 instances)" "$code"
  if wait_for 120 "[$label] /web: 2 instances STABLE and serving" pod_serving web 2 "$text"; then
    fact "2 instances stable and serving" "yes"
  else
    fact "2 instances stable and serving" "no"
  fi
  fact "master tasks after scaling" "$(master_active_tasks "$master" "$fw") tasks, $(master_executor_count "$master" "$fw") executors"

  code=$(http_code DELETE "$BATON/v2/pods/web")
  fact "DELETE /v2/pods/web" "$code"
  wait_for 60 "[$label] /web::status 404" pod_status_gone web || true
  fact "::status after DELETE" "$(http_code GET "$BATON/v2/pods/web::status")"
  wait_for 60 "[$label] no active task on the master" master_tasks_gone "$master" "$fw" || true
  fact "active tasks on the master after DELETE" "$(master_active_tasks "$master" "$fw")"
  wait_for 60 "[$label] no executor on the master" master_executors_gone "$master" "$fw" || true
  fact "executors on the master after DELETE" "$(master_executor_count "$master" "$fw")"
  fact "completed tasks' states" "$(get "$master/master/state" 5 | jq -c --arg fw "$fw" '[.completed_frameworks[]?, .frameworks[] | select(.id == $fw) | .completed_tasks[] | .state] | group_by(.) | map({(.[0]): length}) | add')"
  wait_for 30 "[$label] no http.server or writer process left" no_procs_running "$agent_dir" 'http\.server|out/index\.html' || true
  fact "pod processes left" "$(procs_running "$agent_dir" 'http\.server|out/index\.html' | wc -l)"
  fact "writer states (Baton)" "$(baton_container_states "$SDIR/$BATON_NAME.log" web writer)"
  fact "server states (Baton)" "$(baton_container_states "$SDIR/$BATON_NAME.log" web server)"
}

# run_custom_pod LABEL MASTER_URL FACTS: with --pod_executor baton
# (baton-executor as a custom executor receiving the LAUNCH_GROUP): whether
# the pod comes up, what the master and Baton saw, then deleted.
run_custom_pod() {
  local label=$1 master=$2 facts=$3 fw text code
  fact() { echo "FACT $1: $2" | tee -a "$facts"; }
  fw=$(framework_id)
  text="custom-from-$label"
  code=$(http_code POST "$BATON/v2/pods" "$(pod_json /cweb 1 "$text")")
  fact "custom: POST /v2/pods" "$code"
  if wait_for 90 "[$label] --pod_executor baton: /cweb STABLE and serving" pod_serving cweb 1 "$text"; then
    fact "custom: 1 instance stable and serving" "yes"
  else
    fact "custom: 1 instance stable and serving" "no"
  fi
  fact "custom: master tasks" "$(master_pod_tasks "$master" "$fw" | jq -c '[.[] | {name, state}]')"
  fact "custom: master executors" "$(master_pod_executors "$master" "$fw")"
  code=$(http_code DELETE "$BATON/v2/pods/cweb")
  fact "custom: DELETE" "$code"
  wait_for 60 "[$label] no active task on the master" master_tasks_gone "$master" "$fw" || true
  fact "custom: active tasks on the master after DELETE" "$(master_active_tasks "$master" "$fw")"
  fact "custom: writer states (Baton)" "$(baton_container_states "$SDIR/$BATON_NAME.log" cweb writer)"
  fact "custom: server states (Baton)" "$(baton_container_states "$SDIR/$BATON_NAME.log" cweb server)"
}

scenario_pod() {
  command -v python3 >/dev/null || { echo "FAIL pod: needs python3"; return 1; }
  local real=$SDIR/real.facts local_=$SDIR/local.facts ok=1 murl
  : >"$real"; : >"$local_"

  AGENT_ISOLATION=("${POD_AGENT_ISOLATION[@]}")
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agentA]}"
  murl=http://127.0.0.1:${PORT[master]}
  BATON_NAME=baton-real
  start_baton "127.0.0.1:${PORT[master]}"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  run_pod real "$murl" "$SDIR/agentA" "$real" || ok=0
  kill_pid "${PID[baton]}"; unset 'PID[baton]'
  BATON_NAME=baton-real-custom
  start_baton "127.0.0.1:${PORT[master]}" "" --pod_executor baton
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  run_custom_pod real "$murl" "$real" || true
  log "real master and agent on the pods (LAUNCH_GROUP, task group, TASK_ERROR, Dropping, invalid):"
  plain "$SDIR/master.log" "$SDIR/agentA.log" | grep -E 'LAUNCH_GROUP|task group|TASK_ERROR|Dropping|[Ii]nvalid|SANDBOX_PATH|Failed to launch' | sort -u | tail -n 40 | sed 's/^/  /' || true
  stop_scenario

  PORT[local]=$(free_port)
  spawn "$SDIR/local" "$SDIR/local.log" "$MESOS_LOCAL_BIN" --port "${PORT[local]}" --agents 1 --racks 1 \
    --work_dir "$SDIR/local/work" --executor_path "$EXECUTOR_BIN" --port_range_start 31000
  PID[local]=$SPAWNED
  murl=http://127.0.0.1:${PORT[local]}
  wait_for 60 "mesos-local up" get "$murl/master/state"
  BATON_NAME=baton-local
  start_baton "127.0.0.1:${PORT[local]}"
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  run_pod local "$murl" "$SDIR/local" "$local_" || ok=0
  kill_pid "${PID[baton]}"; unset 'PID[baton]'
  BATON_NAME=baton-local-custom
  start_baton "127.0.0.1:${PORT[local]}" "" --pod_executor baton
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  run_custom_pod local "$murl" "$local_" || true

  local differs
  differs=$(diff <(sed 's/from-real/from-<master>/' "$real") <(sed 's/from-local/from-<master>/' "$local_") || true)
  if ((ok)) && [[ -z $differs ]]; then
    echo "PASS pod: two containers sharing an ephemeral volume, running, healthy and serving the writer's page under the default executor, scaled to 2, deleted with nothing left; --pod_executor baton too; mesos-local gives the same $(grep -c '^FACT' "$real") facts as the real master"
  else
    echo "FAIL pod: $( ((ok)) || echo 'the pod did not come up; ')mesos-local differs from the real master (< real, > mesos-local):"
    echo "$differs"
    return 1
  fi
}

# ---------------------------------------------------------------------------
# Scenario 11: a resident pod (persistent volume) under the default executor, real master vs mesos-local
# ---------------------------------------------------------------------------

# The resident pod /db/store: role db, one 16 MB persistent volume `data`,
# one container `store` mounting it at data, which copies what it finds in
# data/history to `seen` in its own sandbox, then appends its task id.
# ROUND is its `environment`: changing it makes a new version.
resident_pod_json() { # ROUND
  # shellcheck disable=SC2016 # $MESOS_TASK_ID is the task's to expand
  jq -n --arg round "$1" '{
    id: "/db/store", role: "db", environment: {ROUND: $round},
    volumes: [{name: "data", persistent: {size: 16}}], scaling: {kind: "fixed", instances: 1},
    backoff: {backoff: 1, backoffFactor: 1.0},
    containers: [
      {name: "store", resources: {cpus: 0.05, mem: 32},
       exec: {command: {shell: "cat data/history > seen 2>/dev/null; echo \"$MESOS_TASK_ID\" >> data/history; while :; do sleep 1; done"}},
       volumeMounts: [{name: "data", mountPath: "data"}]}]}'
}

# The one instance of /db/store that is STABLE with `store` TASK_RUNNING, as
# "<instance id> <agent id> <task id>" ('' if none or several).
store_running() {
  get "$BATON/v2/pods/db/store::status" | jq -r '[.instances[]?
    | select(.status == "STABLE" and ([.containers[].status] == ["TASK_RUNNING"]))]
    | if length == 1 then "\(.[0].id) \(.[0].agentId) \(.[0].containers[0].containerId)" else "" end'
}
# Whether it runs with a task other than the TASKs given.
store_running_new() { # TASK...
  local i a t
  read -r i a t <<<"$(store_running)"
  [[ -n $t ]] || return 1
  for i in "$@"; do [[ $t != "$i" ]] || return 1; done
}

# The working directory of TASK's shell (the container's sandbox, as its
# process sees it), found among the processes under DIR by its
# MESOS_TASK_ID; '' if it does not run.
container_sandbox() { # DIR TASK
  local pid
  for pid in $(procs_running "$1" 'data/history'); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "MESOS_TASK_ID=$2"; then
      readlink "/proc/$pid/cwd" 2>/dev/null && return 0
    fi
  done
  return 1
}
# The value of VAR in the environment of TASK's shell ('' if it does not run).
task_env() { # DIR TASK VAR
  local pid
  for pid in $(procs_running "$1" 'data/history'); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "MESOS_TASK_ID=$2"; then
      tr '\0' '\n' <"/proc/$pid/environ" | sed -n "s/^$3=//p"
      return 0
    fi
  done
}
has_container_sandbox() { [[ -n $(container_sandbox "$1" "$2") ]]; }

# What PATH is: "symlink to the volume", "symlink to the executor's data"
# (EXECUTOR_SANDBOX/data; '' if none), another link, a directory or missing;
# a link says whether it resolves to the volume VOLUME.
describe_path() { # PATH VOLUME [EXECUTOR_SANDBOX]
  local p=$1 volume=$2 es=${3:-} target resolves
  if [[ -L $p ]]; then
    target=$(readlink "$p")
    [[ $target == /* ]] || target=$(dirname "$p")/$target
    resolves=$([[ $(readlink -f "$p") == "$(readlink -f "$volume")" ]] && echo "resolves to the volume" || echo "resolves elsewhere")
    if [[ -n $es && $(realpath -sm "$target") == "$(realpath -sm "$es/data")" ]]; then
      echo "symlink to the executor's data, $resolves"
    elif [[ $(realpath -sm "$target") == "$(realpath -sm "$volume")" ]]; then
      echo "symlink to the volume"
    else
      echo "symlink to ${target//$es/<executor sandbox>}, $resolves"
    fi
  elif [[ -d $p ]]; then
    echo directory
  elif [[ -e $p ]]; then
    echo "a file"
  else
    echo missing
  fi
}

# JSON on stdin with its numbers rounded to 3 decimals, Mesos's precision
# of scalar resources (a real master shows the sum of its reserved cpus
# 0.05 + 0.1 in /master/state as 0.15000000000000002, mesos-local as 0.15).
milli() { jq -S -c 'walk(if type == "number" then (. * 1000 | round) / 1000 else . end)'; }

# The lines of FILE on one line ('' if it is missing).
lines_of() { paste -sd ' ' "$1" 2>/dev/null || true; }
lines_are() { [[ $(lines_of "$1") == "$2" ]]; }

# resident_pod_run MASTER_URL AGENT_URL AGENT_DIR VOLUME_ROOT: the resident
# pod's life through Baton ($BATON, started by the caller); prints FACT
# lines, and TIME lines (not compared).
resident_pod_run() {
  local murl=$1 aurl=$2 adir=$3 vroot=$4 fw inst agent1 first second third i a t
  local vdir es1 es2 es3 cs1 cs2 cs3 t0 code
  fw=$(framework_id)
  # Task ids first (they hold the instance id), then the instance id.
  norm() {
    sed -E "${third:+s/$third/<third>/g; }${second:+s/$second/<second>/g; }${first:+s/$first/<first>/g; }${inst:+s/$inst/<instance>/g; }s/$fw/<fw>/g
      s/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/<uuid>/g"
  }
  rfact "framework roles" "$(get "$murl/master/state" 5 | jq -c --arg fw "$fw" '.frameworks[] | select(.id == $fw) | .roles')"
  t0=$(now_ms)
  code=$(http_code POST "$BATON/v2/pods" "$(resident_pod_json 1)")
  rfact "POST /v2/pods" "$code"
  wait_for 120 "/db/store: one instance STABLE, store TASK_RUNNING" store_running_new || return 1
  read -r inst agent1 first <<<"$(store_running)"
  echo "TIME first incarnation running: $(($(now_ms) - t0)) ms after POST"
  log "first incarnation $first (instance $inst) on $agent1"

  local label pid
  label=$(get "$murl/master/slaves" 5 | jq -r '[.slaves[0].reserved_resources_full.db // [] | .[]
    | (.reservations[-1] // .reservation).labels.labels[]? | select(.key == "baton_instance_id") | .value][0] // empty')
  pid=$(get "$murl/master/slaves" 5 | jq -r '[.slaves[0].reserved_resources_full.db // [] | .[]
    | .disk.persistence.id? // empty][0] // empty')
  rfact "persistence id" "$(norm <<<"$pid")"
  rfact "instance in the reservation label is the pod instance" "$([[ -n $label && $label == "$inst" ]] && echo yes || echo "no ($label vs $inst)")"
  rfact "reserved for db after the first launch" "$(reserved_db "$murl" | milli)"
  rfact "reservation in /master/slaves" "$(reserved_db_full "$murl" "$fw" "$inst" | milli)"
  rfact "the instance's executor on the master" "$(get "$murl/master/state" 5 | jq -S -c --arg fw "$fw" '[.frameworks[] | select(.id == $fw) | .executors[]
    | {type: (.type // null), command: (.command.value // null),
       resources: (.resources | with_entries(select((.value | type) == "number" and .value != 0)))}]')"
  vdir=$vroot/db/$pid
  rfact "volume directory on the agent" "$([[ -n $pid && -d $vdir ]] && echo "exists, mode $(stat -c %a "$vdir")" || echo missing)"

  es1=$(sandbox_of "$aurl" "$first")
  es1=${es1:+$(realpath -m "$es1")}
  wait_for 30 "the first container's process" has_container_sandbox "$adir" "$first" || true
  cs1=$(container_sandbox "$adir" "$first") || true
  rfact "data in the executor's sandbox" "$(describe_path "$es1/data" "$vdir")"
  rfact "the container's sandbox in the executor's" "$(if [[ -z $cs1 ]]; then echo "not found"; elif [[ $cs1 == "$es1" ]]; then echo "the executor's sandbox itself"; elif [[ $cs1 == "$es1"/* ]]; then norm <<<"${cs1#"$es1"/}"; else echo "outside it"; fi)"
  rfact "tasks/<first> in the executor's sandbox" "$(if [[ -L $es1/tasks/$first ]]; then echo "symlink to $(readlink "$es1/tasks/$first" | sed "s|^$es1/|<executor sandbox>/|" | norm)"; elif [[ -d $es1/tasks/$first ]]; then echo directory; else echo missing; fi)"
  rfact "data in the container's sandbox" "$(describe_path "$cs1/data" "$vdir" "$es1")"
  rfact "the container's MESOS_SANDBOX" "$(task_env "$adir" "$first" MESOS_SANDBOX | sed "s|^$cs1\$|the container's sandbox|; s|^$es1\$|the executor's sandbox|" | norm)"
  wait_for 30 "data/history to hold the first id" lines_are "$vdir/history" "$first" || true
  rfact "history after the first incarnation" "$(lines_of "$vdir/history" | norm)"
  rfact "history through the container's data" "$(lines_of "$cs1/data/history" | norm)"
  rfact "seen by the first incarnation" "$(lines_of "$cs1/seen" | norm)"
  rfact "::status localVolumes" "$(get "$BATON/v2/pods/db/store::status" | jq -S -c '[.instances[0].localVolumes[]?]' | norm)"

  # A new version: the same instance relaunched in place.
  t0=$(now_ms)
  code=$(http_code PUT "$BATON/v2/pods/db/store" "$(resident_pod_json 2)")
  rfact "PUT /v2/pods/db/store (new environment)" "$code"
  wait_for 120 "the second incarnation of /db/store running" store_running_new "$first" || return 1
  read -r i a second <<<"$(store_running)"
  echo "TIME second incarnation running: $(($(now_ms) - t0)) ms after PUT"
  log "second incarnation $second (instance $i) on $a"
  rfact "second incarnation: same instance, same agent" "$([[ $i == "$inst" ]] && echo yes || echo no), $([[ $a == "$agent1" ]] && echo yes || echo no)"
  es2=$(sandbox_of "$aurl" "$second")
  es2=${es2:+$(realpath -m "$es2")}
  rfact "second executor's sandbox is new" "$([[ -n $es2 && $es2 != "$es1" ]] && echo yes || echo "no ($es2)")"
  wait_for 30 "the second container's process" has_container_sandbox "$adir" "$second" || true
  cs2=$(container_sandbox "$adir" "$second") || true
  rfact "data in the second container's sandbox" "$(describe_path "$cs2/data" "$vdir" "$es2")"
  wait_for 30 "data/history to hold both ids" lines_are "$vdir/history" "$first $second" || true
  rfact "history after the new version" "$(lines_of "$vdir/history" | norm)"
  rfact "seen by the second incarnation" "$(lines_of "$cs2/seen" | norm)"
  rfact "data in the first executor's sandbox after it ended" "$(describe_path "$es1/data" "$vdir")"
  rfact "data in the first container's sandbox after it ended" "$(describe_path "$cs1/data" "$vdir" "$es1")"
  rfact "reserved for db after the new version" "$(reserved_db "$murl" | milli)"

  # The instance killed (no wipe): relaunched on its volume.
  t0=$(now_ms)
  code=$(http_code DELETE "$BATON/v2/pods/db/store::instances/$inst")
  rfact "DELETE /v2/pods/db/store::instances/<instance>" "$code"
  wait_for 120 "the third incarnation of /db/store running" store_running_new "$first" "$second" || return 1
  read -r i a third <<<"$(store_running)"
  echo "TIME third incarnation running: $(($(now_ms) - t0)) ms after DELETE of the instance"
  log "third incarnation $third (instance $i) on $a"
  rfact "third incarnation: same instance, same agent" "$([[ $i == "$inst" ]] && echo yes || echo no), $([[ $a == "$agent1" ]] && echo yes || echo no)"
  es3=$(sandbox_of "$aurl" "$third")
  es3=${es3:+$(realpath -m "$es3")}
  wait_for 30 "the third container's process" has_container_sandbox "$adir" "$third" || true
  cs3=$(container_sandbox "$adir" "$third") || true
  rfact "data in the third container's sandbox" "$(describe_path "$cs3/data" "$vdir" "$es3")"
  wait_for 30 "data/history to hold three ids" lines_are "$vdir/history" "$first $second $third" || true
  rfact "history after the instance was killed" "$(lines_of "$vdir/history" | norm)"
  rfact "seen by the third incarnation" "$(lines_of "$cs3/seen" | norm)"
  rfact "::status localVolumes after the relaunches" "$(get "$BATON/v2/pods/db/store::status" | jq -S -c '[.instances[0].localVolumes[]?]' | norm)"
  rfact "reserved for db after the relaunches" "$(reserved_db "$murl" | milli)"

  # Deleted: the volume destroyed, the reservation given back.
  t0=$(now_ms)
  code=$(http_code DELETE "$BATON/v2/pods/db/store")
  rfact "DELETE /v2/pods/db/store" "$code"
  wait_for 60 "/db/store::status 404" pod_status_gone db/store || true
  wait_for 90 "the reservation of db freed on the master" db_unreserved "$murl" || true
  echo "TIME reservation freed: $(($(now_ms) - t0)) ms after DELETE of the pod"
  rfact "reserved for db after DELETE" "$(reserved_db "$murl" | milli)"
  rfact "reserved_resources after DELETE" "$(master_agent "$murl" | jq -c '.reserved_resources' | milli)"
  rfact "the volume on the master after DELETE" "$(get "$murl/master/slaves" 5 | jq -r '[.slaves[0].reserved_resources_full.db // [] | .[]
    | .disk.persistence.id? // empty] | if length == 0 then "destroyed" else "still there" end')"
  wait_for 30 "the volume directory removed" absent "$vdir" || true
  rfact "volume directory after DELETE" "$([[ -n $pid && -e $vdir ]] && echo exists || echo gone)"
  wait_for 60 "no active task on the master" master_tasks_gone "$murl" "$fw" || true
  rfact "active tasks on the master after DELETE" "$(master_active_tasks "$murl" "$fw")"
  wait_for 30 "no store process left" no_procs_running "$adir" 'data/history' || true
  rfact "store processes left" "$(procs_running "$adir" 'data/history' | wc -l)"
  rfact "store states (Baton)" "$(baton_container_states "$SDIR/$BATON_NAME.log" db_store store)"
}

scenario_resident_pod() {
  local real=$SDIR/real.facts local_=$SDIR/local.facts ok=1 dropped
  AGENT_ISOLATION=("${POD_AGENT_ISOLATION[@]}")
  start_master master --registry=in_memory
  start_agent agentA "127.0.0.1:${PORT[master]}" r1 31000-31099
  wait_for 60 "the agent registered" agent_registered "${PORT[master]}" "${PORT[agentA]}"
  BATON_NAME=baton-real
  start_baton "127.0.0.1:${PORT[master]}" "" --mesos_role '*,db'
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  resident_pod_run "http://127.0.0.1:${PORT[master]}" "http://127.0.0.1:${PORT[agentA]}" "$SDIR/agentA" \
    "$SDIR/agentA/work/volumes/roles" | tee "$real" || { ok=0; log "the run against the real master stopped early"; }
  dropped=$(plain "$SDIR/master.log" "$SDIR/agentA.log" |
    grep -E 'Dropping|Failed to validate|[Ii]nvalid|TASK_ERROR|TASK_DROPPED|Failed to launch' || true)
  log "the real agent on the volume and the pod's containers:"
  plain "$SDIR/agentA.log" | grep -E 'persistent volume|SANDBOX_PATH|symlink|[Ll]inking|LAUNCH_GROUP|task group' |
    sed -E "s/^[IWEF][0-9]{4} [0-9:.]+ +[0-9]+ //; s|$SDIR/agentA/work|<work_dir>|g" | tail -n 30 | sed 's/^/  /' || true
  stop_scenario

  PORT[local]=$(free_port)
  spawn "$SDIR/local" "$SDIR/local.log" "$MESOS_LOCAL_BIN" --port "${PORT[local]}" --agents 1 --racks 1 \
    --disk 4096 --work_dir "$SDIR/local/work" --executor_path "$EXECUTOR_BIN" --port_range_start 31000
  PID[local]=$SPAWNED
  wait_for 60 "mesos-local up" get "http://127.0.0.1:${PORT[local]}/master/state"
  local agent_url
  agent_url=http://$(get "http://127.0.0.1:${PORT[local]}/master/state" | jq -r '.slaves[0].pid | sub("^slave\\(1\\)@"; "")')
  BATON_NAME=baton-local
  start_baton "127.0.0.1:${PORT[local]}" "" --mesos_role '*,db'
  wait_for 60 "Baton subscribed (marathon_mesos_connected 1)" baton_connected
  resident_pod_run "http://127.0.0.1:${PORT[local]}" "$agent_url" "$SDIR/local" \
    "$SDIR/local/work/volumes/agent-1/roles" | tee "$local_" || { ok=0; log "the run against mesos-local stopped early"; }

  local differs times
  differs=$(diff <(grep '^FACT' "$real") <(grep '^FACT' "$local_") || true)
  times=$(paste -d' ' <(grep '^TIME' "$real" | sed -E 's/^TIME ([^:]*): ([0-9]+) ms.*/\1 \2 ms/') \
    <(grep '^TIME' "$local_" | sed -E 's/.*: ([0-9]+) ms.*/(mesos-local \1 ms)/') | paste -sd ';' | sed 's/;/; /g')
  log "real Mesos:"; grep -E '^(FACT|TIME)' "$real" | sed 's/^/  /'
  if [[ -n $dropped ]]; then
    log "the real master's and agent's logs on Baton's operations and the pod's launches:"
    printf '  %s\n' "${dropped//$'\n'/$'\n'  }"
  fi
  # What Baton must achieve on the real master.
  local good=1 want
  for want in 'history after the instance was killed: <first> <second> <third>' \
    'second incarnation: same instance, same agent: yes, yes' 'third incarnation: same instance, same agent: yes, yes' \
    'seen by the third incarnation: <first> <second>' 'reserved for db after DELETE: {}' 'volume directory after DELETE: gone'; do
    grep -qxF "FACT $want" "$real" || { good=0; log "on the real master, not: $want"; }
  done
  if ((ok && good)) && [[ -z $differs && -z $dropped ]]; then
    echo "PASS resident-pod: reserve+create+launch_group in role db under the default executor, the volume in the executor's sandbox and linked into the container's, a new version and a killed instance relaunched on the same agent and volume (history holds all three ids), reservation and volume freed after DELETE; the master and agent logged no drop, invalid operation or failed launch; mesos-local gives the same $(grep -c '^FACT' "$real") facts as the real master; $times"
  else
    echo "FAIL resident-pod:$( ((ok)) || echo " a run stopped early;")$( ((good)) || echo " Baton misbehaved on the real master;")${dropped:+ the real master or agent logged drops, invalid operations or failed launches (above);}${differs:+ mesos-local differs from the real master (< real, > mesos-local):}"
    [[ -n $differs ]] && echo "$differs"
    local f
    for f in "$SDIR"/baton*.log; do show_log "$f" 20 'WARN|ERROR|reserv|volume'; done
    return 1
  fi
}

for scenario in "${SCENARIOS[@]}"; do
  log "=== $scenario ==="
  out=$ROOT/$scenario.out
  set +e
  (
    set -e
    SDIR=$ROOT/$scenario
    mkdir -p "$SDIR"
    trap stop_scenario EXIT
    "scenario_${scenario//-/_}"
  ) 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  line=$(grep -E "^(PASS|FAIL) $scenario:" "$out" | tail -n 1 || true)
  if ((rc != 0)); then
    FAILED=1
    # A scenario that stopped before measuring (a wait timed out) prints no verdict.
    [[ -n $line ]] || line="FAIL $scenario: aborted (exit $rc) before measuring; logs in $ROOT/$scenario"
    if ! grep -q "^FAIL $scenario:" "$out"; then
      echo "$line"
      for f in "$ROOT/$scenario"/*.log; do [[ -f $f ]] && show_log "$f" 15; done
    fi
  fi
  RESULTS+=("$line")
done

echo
echo "===== summary ====="
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
