#!/usr/bin/env python3
"""Reads Baton's event stream with the Python `marathon` client from PyPI
(thefactory/marathon-python): `MarathonClient(url).event_stream(event_types=[...])`.

Usage: event_stream_check.py <baton url> <app id> [deadline seconds, default 60]

Subscribes to `status_update_event` only, prints every event the client
yields, and exits 0 after the first `status_update_event` of <app id>
(printing "[event_stream_check] OK status_update_event ..."). Exits
non-zero if another event type comes through the filter, if the client
fails, or when the deadline passes first. The app is created by the
caller once this script is attached (tests/tests/events_groups.rs).

Only `status_update_event` is asked for: marathon-python 0.13 cannot
parse deployment events in the "light" plan format Marathon sends since
1.8 (no `plan.original`/`plan.target`), which Baton sends too.
"""

import signal
import sys

try:
    from marathon import MarathonClient
except ImportError as e:  # pragma: no cover - reported by the Rust test
    print(
        f"the Python `marathon` client is not installed ({e}); run scripts/test.sh, "
        "or: python3 -m pip install 'marathon>=0.13'",
        file=sys.stderr,
    )
    sys.exit(3)

EVENT_TYPES = ["status_update_event"]


def log(message):
    print(f"[event_stream_check] {message}", flush=True)


def on_deadline(signum, frame):
    log(f"FAILED: no status_update_event of the app within {DEADLINE} s")
    sys.exit(2)


def main():
    url, app_id = sys.argv[1], sys.argv[2]
    client = MarathonClient(url)
    log(f"subscribing to {EVENT_TYPES} at {url}")
    for event in client.event_stream(event_types=EVENT_TYPES):
        # Not event.to_json(): marathon-python 0.13 uses collections.Iterable
        # there, which Python 3.10 removed.
        log(f"read {event.event_type}: {vars(event)}")
        if event.event_type not in EVENT_TYPES:
            log(f"FAILED: the filter let {event.event_type} through")
            return 1
        if getattr(event, "app_id", None) == app_id:
            log(f"OK status_update_event {event.task_id} {event.task_status}")
            return 0
    log("FAILED: the stream ended")
    return 1


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    DEADLINE = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(DEADLINE)
    sys.exit(main())
