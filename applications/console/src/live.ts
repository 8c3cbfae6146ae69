// The queue stream of the WebSocket (`/api/v1/ws`, topic `queues`): a snapshot of what
// `GET /queues` answers, then every change in order, each with its `seq`. When the socket
// drops (network, server restart) it reconnects with growing pauses and subscribes with
// `since` = the last `seq` it applied, so the server replays what was missed and nothing is
// lost or counted twice; a resume the server finds too old (close 4001) is answered with a
// fresh snapshot. Counts and the ready queue follow the changes themselves; each resource's
// holders, the wait reasons and the late processes are read again (`GET /queues`) a moment
// after changes arrive.
// No polling: the page changes only when the kernel says something changed.
import { useEffect, useRef, useState } from "react";
import { api, token, type Schemas } from "./api";

/** `GET /queues`, and the queue snapshot of the WebSocket. */
export type Queues = Schemas["Queues"];

/** One change as the WebSocket sends it. */
export interface Change {
  seq: number;
  process: number;
  at_ms: number;
  by: string;
  from: string;
  to: string;
  reason: string;
  step?: string | null;
  pcb?: { service?: string; state?: string; step?: string | null; priority?: number };
}

/** Where the stream is. */
export type Link = "connecting" | "live" | "reconnecting" | "closed";

/** The most changes the feed keeps. */
const FEED = 50;

/** The queues, kept current from the WebSocket, with the recent changes. */
export function useQueueStream(): { queues: Queues | null; feed: Change[]; link: Link; seq: number | null } {
  const [queues, setQueues] = useState<Queues | null>(null);
  const [feed, setFeed] = useState<Change[]>([]);
  const [link, setLink] = useState<Link>("connecting");
  const [seq, setSeq] = useState<number | null>(null);
  const last = useRef<number | null>(null);

  useEffect(() => {
    let socket: WebSocket | null = null;
    let stopped = false;
    let pause = 250;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let detail: ReturnType<typeof setTimeout> | undefined;

    // Holders and wait reasons are not in a change: read them again once changes settle.
    // (The counts stay the stream's, so no change is counted twice; the ready queue is
    // taken in the kernel's dispatch order.)
    const refreshDetail = () => {
      if (detail) clearTimeout(detail);
      detail = setTimeout(() => {
        void api.GET("/api/v1/queues").then(({ data }) => {
          if (data)
            setQueues((q) =>
              q
                ? { ...q, resources: data.resources, waiting: data.waiting, ready_queue: data.ready_queue, late: data.late, late_total: data.late_total }
                : q,
            );
        });
      }, 250);
    };

    const apply = (c: Change) => {
      if (last.current !== null && c.seq <= last.current) return;
      last.current = c.seq;
      setSeq(c.seq);
      setFeed((f) => [c, ...f].slice(0, FEED));
      refreshDetail();
      if (c.from === c.to) return;
      setQueues((q) => {
        if (!q) return q;
        const states = { ...q.states };
        states[c.from] = Math.max(0, (states[c.from] ?? 0) - 1);
        states[c.to] = (states[c.to] ?? 0) + 1;
        const ready = q.ready_queue.filter((p) => p !== c.process);
        return { ...q, states, ready_queue: c.to === "READY" ? [...ready, c.process] : ready };
      });
    };

    const connect = () => {
      const t = token();
      if (!t || stopped) return;
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws?access_token=${encodeURIComponent(t)}`);
      socket.onopen = () => {
        const since = last.current;
        socket?.send(JSON.stringify(since === null ? { subscribe: "queues" } : { subscribe: "queues", since }));
      };
      socket.onmessage = (m: MessageEvent<string>) => {
        const msg = JSON.parse(m.data) as { type: string } & Record<string, unknown>;
        if (msg.type === "snapshot") {
          const snapshot = msg as unknown as Queues & { seq: number };
          last.current = snapshot.seq;
          setSeq(snapshot.seq);
          setQueues(snapshot);
          setLink("live");
          pause = 250;
        } else if (msg.type === "resume") {
          setLink("live");
          pause = 250;
        } else if (msg.type === "change") {
          apply(msg as unknown as Change);
        }
      };
      socket.onclose = (e: CloseEvent) => {
        socket = null;
        if (stopped) return;
        // The session ended or the grant is gone: nothing to reconnect to.
        if (e.code === 1008) {
          setLink("closed");
          return;
        }
        // Too far behind to replay: start again from a snapshot.
        if (e.code === 4001) last.current = null;
        setLink("reconnecting");
        timer = setTimeout(connect, pause);
        pause = Math.min(pause * 2, 4000);
      };
    };
    connect();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (detail) clearTimeout(detail);
      socket?.close();
    };
  }, []);

  return { queues, feed, link, seq };
}
