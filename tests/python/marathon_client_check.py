#!/usr/bin/env python3
"""Drives Baton with the Python `marathon` client from PyPI (thefactory/marathon-python).

Usage: marathon_client_check.py <baton url> <marker>

Creates /pyclient/web (2 instances of `sleep 600 # <marker>`), lists it,
waits for its 2 tasks (embed_tasks), scales it to 3, lists its tasks, kills
one task with scale=true (instances drop to 2), deletes the app and waits
for it to be gone. Exits non-zero with a message on the first failure.
Run by tests/tests/python_client.rs.
"""

import os
import sys
import time

try:
    from marathon import MarathonClient
    from marathon.exceptions import NotFoundError
    from marathon.models import MarathonApp
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(
        f"the Python `marathon` client is not installed ({e}); run scripts/test.sh, "
        "or: python3 -m pip install 'marathon>=0.13'",
        file=sys.stderr,
    )
    sys.exit(3)

APP_ID = "/pyclient/web"
DEADLINE_SECONDS = 30.0


def log(message):
    print(f"[marathon_client_check] {message}", flush=True)


def poll(what, check, timeout=DEADLINE_SECONDS):
    """Calls check() every 0.1 s until it returns a truthy value; fails after timeout.

    check() may return (done, detail); detail is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        result = check()
        if isinstance(result, tuple):
            done, last = result
        else:
            done, last = result, result
        if done:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last seen: {last!r}")
        time.sleep(0.1)


def app_state(client):
    app = client.get_app(APP_ID, embed_tasks=True)
    tasks = sorted(t.id for t in app.tasks)
    return app, tasks


def wait_for_tasks(client, instances):
    def check():
        app, tasks = app_state(client)
        detail = {
            "instances": app.instances,
            "tasks_running": app.tasks_running,
            "tasks_staged": app.tasks_staged,
            "tasks": tasks,
        }
        done = (
            app.instances == instances
            and app.tasks_running == instances
            and len(app.tasks) == instances
        )
        return done, detail

    detail = poll(f"{APP_ID} to run {instances} tasks", check)
    log(f"{APP_ID} runs {instances} tasks: {detail['tasks']}")
    return detail["tasks"]


def marked_pids(marker):
    """Local pids whose command line or environment holds `marker` (the
    tasks run on this machine's embedded cluster)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{name}/{part}", "rb") as f:
                    if marker.encode() in f.read():
                        pids.append(int(name))
                        break
            except OSError:
                pass
    return pids


def app_ids(client):
    return [a.id for a in client.list_apps()]


def main():
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} <baton url> <marker>", file=sys.stderr)
        return 2
    url, marker = sys.argv[1], sys.argv[2]
    client = MarathonClient([url], timeout=10)
    log(f"talking to {url}")

    # Create.
    app = MarathonApp(
        cmd=f"sleep 600 # {marker}",
        cpus=0.1,
        mem=32,
        instances=2,
        env={"BATON_E2E_MARKER": marker},
    )
    created = client.create_app(APP_ID, app)
    assert created, "create_app did not answer 201"
    assert created.id == APP_ID, f"create_app returned id {created.id!r}, expected {APP_ID!r}"
    assert created.instances == 2, f"create_app returned instances {created.instances!r}"
    assert created.cmd == app.cmd, f"create_app returned cmd {created.cmd!r}"
    log(f"created {created.id} (deployments {[d.id for d in created.deployments]})")

    # List.
    ids = app_ids(client)
    assert APP_ID in ids, f"list_apps() does not include {APP_ID}: {ids}"
    log(f"list_apps() includes {APP_ID}")

    # Get with tasks: 2 running, and their processes carry the marker (so
    # the Rust test's "all gone" checks are not vacuous).
    first = wait_for_tasks(client, 2)
    pids = poll(
        "the tasks' processes to carry the marker",
        lambda: (len(marked_pids(marker)) >= 2, marked_pids(marker)),
    )
    log(f"processes carrying the marker: {pids}")

    # Scale to 3.
    result = client.scale_app(APP_ID, instances=3)
    assert isinstance(result, dict) and result.get("deploymentId"), (
        f"scale_app did not return a deployment result: {result!r}"
    )
    log(f"scale_app(instances=3) -> deployment {result['deploymentId']}")
    after_scale = wait_for_tasks(client, 3)
    assert set(first) <= set(after_scale), (
        f"scaling up replaced running tasks: before {first}, after {after_scale}"
    )

    # List tasks of the app.
    tasks = client.list_tasks(APP_ID)
    assert len(tasks) == 3, f"list_tasks({APP_ID!r}) gave {len(tasks)} tasks: {[t.id for t in tasks]}"
    for t in tasks:
        assert t.app_id == APP_ID, f"task {t.id} has app_id {t.app_id!r}"
        assert t.host, f"task {t.id} has no host"
    log(f"list_tasks gives 3 tasks: {sorted(t.id for t in tasks)}")

    # Kill one task with scale=true: instances 3 -> 2, no replacement.
    victim = tasks[0].id
    killed = client.kill_task(APP_ID, victim, scale=True)
    assert isinstance(killed, dict) and killed.get("deploymentId"), (
        f"kill_task(scale=True) did not return a deployment result: {killed!r}"
    )
    log(f"kill_task({victim}, scale=True) -> deployment {killed['deploymentId']}")
    remaining = wait_for_tasks(client, 2)
    assert victim not in remaining, f"the killed task {victim} is still listed: {remaining}"
    assert set(remaining) <= set(after_scale), (
        f"the kill with scale=true started replacements: {remaining} vs {after_scale}"
    )

    # Delete.
    deleted = client.delete_app(APP_ID)
    assert isinstance(deleted, dict) and deleted.get("deploymentId"), (
        f"delete_app did not return a deployment result: {deleted!r}"
    )
    log(f"delete_app -> deployment {deleted['deploymentId']}")

    def gone():
        try:
            found = client.get_app(APP_ID, embed_tasks=True)
        except NotFoundError as e:
            return True, f"404: {e.error_message}"
        return False, {"instances": found.instances, "tasks": [t.id for t in found.tasks]}

    detail = poll(f"get_app({APP_ID!r}) to raise NotFoundError", gone)
    assert f"'{APP_ID}'" in detail, f"the 404 message does not name the app: {detail}"
    log(f"get_app raises NotFoundError ({detail})")
    ids = app_ids(client)
    assert APP_ID not in ids, f"list_apps() still includes {APP_ID} after delete: {ids}"
    log("list_apps() no longer includes it")
    log("OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"[marathon_client_check] FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - any client error is a failure with its text
        import traceback

        traceback.print_exc()
        print(f"[marathon_client_check] FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
