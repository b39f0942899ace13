// The town's live event stream (`GET /api/towns/:id/events/ws?since=<seq>`): one WebSocket per
// open town. It reports every event with its seq, reconnects with exponential backoff, and on
// reconnect resumes from the last seq seen so nothing is missed (the server replays the gap, or
// says `refetch` when the gap is too large). The dashboard's state is driven from here: nothing
// the stream delivers is polled on a timer.

import type { BeadEvent } from './api';
import { T } from './api';

export type StreamStatus = 'connecting' | 'connected' | 'reconnecting' | 'disconnected';

export interface StreamMessage { type: 'event'; seq: number; entity: string; event: BeadEvent }

export interface StreamHandlers {
  /** A live (or replayed) event, in seq order, never twice. */
  onEvent(m: StreamMessage): void;
  /** The socket is ready at `seq`; `resync` when state must be fetched again (first connect, or a gap too large to replay). */
  onReady(seq: number, resync: boolean): void;
  onStatus(s: StreamStatus, detail: string): void;
}

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** After this many failed attempts in a row the status says "disconnected" (retries go on). */
const GIVE_UP_LABEL_AFTER = 5;
/** A keep-alive ping, so a silently dead connection is noticed (the server answers pong). */
const PING_EVERY_MS = 25_000;

export class TownStream {
  private ws: WebSocket | null = null;
  private lastSeq: number | null = null;
  private attempts = 0;
  private retryTimer: number | undefined;
  private pingTimer: number | undefined;
  private closed = false;
  private needResync = true;
  status: StreamStatus = 'connecting';

  constructor(private readonly townId: string, private readonly h: StreamHandlers) {}

  start(): void {
    this.closed = false;
    this.open();
  }

  stop(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.ws?.close(1000, 'leaving the town');
    this.ws = null;
  }

  /** Reconnects at once (the "Reconnect now" button, or the browser coming back online). */
  reconnectNow(): void {
    if (this.closed || this.status === 'connected') return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  get seq(): number | null {
    return this.lastSeq;
  }

  private set(status: StreamStatus, detail = ''): void {
    this.status = status;
    this.h.onStatus(status, detail);
  }

  private open(): void {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastSeq === null ? '' : `?since=${this.lastSeq}`;
    const ws = new WebSocket(`${proto}//${location.host}${T(this.townId)}/events/ws${since}`);
    this.ws = ws;
    if (this.attempts === 0) this.set('connecting');
    ws.onmessage = (e) => this.message(e.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      clearInterval(this.pingTimer);
      this.ws = null;
      if (!this.closed) this.scheduleRetry();
    };
    // onclose follows every error; nothing else to do here.
    ws.onerror = () => {};
  }

  private message(data: unknown): void {
    if (typeof data !== 'string') return;
    let m: { type: string; seq?: number; entity?: string; event?: BeadEvent };
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m.type === 'event' && typeof m.seq === 'number') {
      // Replays after a reconnect may overlap what was already applied: skip seen seqs.
      if (this.lastSeq !== null && m.seq <= this.lastSeq) return;
      this.lastSeq = m.seq;
      this.h.onEvent(m as StreamMessage);
    } else if (m.type === 'refetch') {
      this.needResync = true;
      if (typeof m.seq === 'number') this.lastSeq = m.seq;
    } else if (m.type === 'ready') {
      const seq = typeof m.seq === 'number' ? m.seq : 0;
      const resync = this.needResync || this.lastSeq === null;
      if (this.lastSeq === null || seq > this.lastSeq) {
        // The first connect starts at the newest event; later ones have replayed up to it.
        if (this.lastSeq === null) this.lastSeq = seq;
      }
      this.needResync = false;
      this.attempts = 0;
      this.set('connected');
      clearInterval(this.pingTimer);
      this.pingTimer = window.setInterval(() => this.ws?.readyState === WebSocket.OPEN && this.ws.send('ping'), PING_EVERY_MS);
      this.h.onReady(seq, resync);
    }
  }

  private scheduleRetry(): void {
    this.attempts++;
    // Exponential backoff with jitter, so many tabs do not reconnect in lockstep after a restart.
    const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (this.attempts - 1)) * (0.8 + Math.random() * 0.4);
    const secs = Math.max(1, Math.round(delay / 1000));
    this.set(this.attempts > GIVE_UP_LABEL_AFTER ? 'disconnected' : 'reconnecting', `retrying in ${secs}s`);
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }
}
