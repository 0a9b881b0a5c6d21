// /v2/events read with fetch() and a streaming Server-Sent Events parser:
// EventSource cannot send the Authorization header.
//
// On a standby, /v2/events answers with a redirect to the leader (another
// origin, which the page cannot follow with its credentials): then the
// stream is read from /ui/api/events, which the standby relays from the
// leader. A dropped stream is reopened with a growing pause (1 s to 15 s);
// every (re)connection is reported, so that the page re-reads what it may
// have missed.

import { headers, ApiError } from "./api.js";

/** Splits SSE text into events; keeps the unfinished rest in `state`. */
export function parseSse(state, text, dispatch) {
  let all = state.buffer + text;
  // A chunk may end between the \r and \n of one line break.
  const held = all.endsWith("\r") ? "\r" : "";
  if (held) all = all.slice(0, -1);
  const lines = all.split(/\r\n|\r|\n/);
  state.buffer = lines.pop() + held;
  for (const line of lines) {
    if (line === "") {
      if (state.data.length) dispatch(state.event || "message", state.data.join("\n"));
      state.event = "";
      state.data = [];
    } else if (line.startsWith(":")) {
      // A keepalive comment.
    } else {
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") state.event = value;
      else if (field === "data") state.data.push(value);
    }
  }
}

export class EventStream {
  /**
   * onEvent(type, json) for each event; onState("live" | "connecting" |
   * "offline", error) as the connection changes.
   */
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.controller = null;
    this.stopped = true;
    this.relay = false;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    let pause = 1000;
    while (!this.stopped) {
      this.onState("connecting");
      try {
        await this.connect(() => { pause = 1000; });
        if (!this.stopped) this.onState("offline", new Error("The event stream ended"));
      } catch (error) {
        if (this.stopped) return;
        this.onState("offline", error);
        if (error instanceof ApiError && error.status === 401) return;
      }
      this.relay = false;
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 15000);
    }
  }

  async connect(connected) {
    this.controller = new AbortController();
    const url = this.relay ? "/ui/api/events" : "/v2/events";
    const response = await fetch(url, {
      headers: headers({ Accept: "text/event-stream" }),
      credentials: "omit",
      cache: "no-store",
      redirect: "manual",
      signal: this.controller.signal,
    });
    if (response.type === "opaqueredirect" && !this.relay) {
      // A standby: read the leader's stream through it.
      this.relay = true;
      return this.connect(connected);
    }
    if (!response.ok || !response.body) {
      let body = null;
      try { body = await response.json(); } catch { /* not JSON */ }
      throw new ApiError(response.status, body, `GET ${url}`);
    }
    connected();
    this.onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const state = { buffer: "", event: "", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parseSse(state, value, (type, data) => {
        let json = null;
        try { json = JSON.parse(data); } catch { return; }
        this.onEvent(type, json);
      });
    }
  }
}
