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
#                     executor-fetch-failure (default: all four)
#
# Each scenario runs against a fresh Mesos master (two for the ZooKeeper one),
# fresh agents and a fresh Baton, every one of them on 127.0.0.1 with free
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

ALL_SCENARIOS=(max-over-zero group-by-rack-outage zk-master-failover executor-fetch-failure)

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
for bin in "$BATON_BIN" "$EXECUTOR_BIN"; do
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
start_agent() {
  local name=$1 master=$2 rack=$3 ports=$4
  PORT[$name]=$(free_port)
  local dir=$SDIR/$name
  spawn "$dir" "$SDIR/$name.log" "$M/sbin/mesos-agent" \
    --master="$master" --ip=127.0.0.1 --hostname=127.0.0.1 --port="${PORT[$name]}" \
    --work_dir="$dir/work" --runtime_dir="$dir/run" --fetcher_cache_dir="$dir/fetch" \
    --launcher=posix --isolation=posix/cpu,posix/mem --systemd_enable_support=false --no-switch_user \
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

# start_baton MASTER [EXECUTOR_PATH]: Baton with its own data dir and port;
# BATON=its URL. EXECUTOR_PATH (default: the built baton-executor) is the
# binary it serves to the agents.
BATON=""
start_baton() {
  local executor=${2:-$EXECUTOR_BIN}
  PORT[baton]=$(free_port)
  BATON=http://127.0.0.1:${PORT[baton]}
  spawn "$SDIR/baton" "$SDIR/baton.log" env NO_COLOR=1 "$BATON_BIN" \
    --master "$1" --hostname 127.0.0.1 --http_address 127.0.0.1 --http_port "${PORT[baton]}" \
    --data_dir "$SDIR/baton/data" --executor_path "$executor"
  PID[baton]=$SPAWNED
  log "baton: pid ${PID[baton]} on $BATON, --master $1, --executor_path $executor"
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
# Main
# ---------------------------------------------------------------------------

RESULTS=()
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
