// One live agent terminal: xterm.js plus its WebSocket. A browser cannot put credentials on a
// WebSocket upgrade, so each connection first mints a one-use stream ticket and opens the URL it
// returns. Binary frames are terminal bytes (scrollback first, then live output), text frames are
// JSON control (exit, lagged, error). Only the mayor's terminal is writable: keystrokes go up as
// binary frames and its size follows the panel; other terminals are view-only.
//
// Reattaching: the owner says whether the agent is expected to run (`setRunning`). While it is,
// a lost connection is retried with backoff for as long as it takes (a Worker restart, a run
// starting up); while it is not, the terminal waits and reattaches by itself as soon as the agent
// runs again. `reattach()` (the Reconnect button) tries at once.
//
// Keyboard: a read-only terminal never captures Tab, Shift+Tab or Escape (Escape leaves it). The
// writable one passes every key to the program, except Ctrl+] and Escape pressed twice quickly,
// which leave the terminal (`onLeave`) — so focus is never trapped (WCAG 2.1.2).

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { post, T } from './api';
import { h } from './dom';

export type TermStatus = 'connecting' | 'connected' | 'reconnecting' | 'waiting' | 'exited' | 'disconnected';

const MAX_DELAY_MS = 10_000;
/** Escape twice within this many ms leaves the writable terminal. */
const DOUBLE_ESC_MS = 600;
export const LEAVE_HINT = 'Esc Esc or Ctrl+] leaves the terminal';

export class AgentTerminal {
  readonly el: HTMLElement;
  private term: Terminal;
  private fit = new FitAddon();
  private ws: WebSocket | null = null;
  private attempts = 0;
  private timer: number | undefined;
  private disposed = false;
  private resizeObs: ResizeObserver;
  private encoder = new TextEncoder();
  private lastSize = '';
  private lastEsc = 0;
  /** Bumped by every connect: a slower, older attempt notices it is stale and stops. */
  private gen = 0;
  /** Is the agent expected to run (so a failed attach is worth retrying)? Unknown counts as yes. */
  private running = true;
  status: TermStatus = 'connecting';
  detail = '';
  onStatus: (s: TermStatus, detail: string) => void = () => {};
  /** The person asked to leave the terminal (Ctrl+], Esc Esc, or Escape/Tab in a read-only one). */
  onLeave: (dir: 'back' | 'forward') => void = () => {};

  constructor(readonly townId: string, readonly agentId: string, readonly label: string, readonly writable: boolean) {
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: writable,
      disableStdin: !writable,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      screenReaderMode: false,
      // Program output stays readable on the dark background (dim text included): WCAG AA.
      minimumContrastRatio: 4.5,
      theme: { background: '#0b0f14', foreground: '#d6dde6', cursor: writable ? '#f5c542' : '#0b0f14' },
    });
    this.term.loadAddon(this.fit);
    this.el = h('div', {
      class: 'term-host',
      role: 'region',
      'aria-label': `${label} terminal${writable ? ` (read-write; ${LEAVE_HINT})` : ' (read-only)'}`,
      'data-agent-id': agentId,
      'data-writable': writable ? 'true' : 'false',
    });
    this.term.open(this.el);
    this.term.attachCustomKeyEventHandler((e) => this.key(e));
    if (writable) {
      this.term.onData((d) => this.send(this.encoder.encode(d)));
      this.term.onBinary((d) => this.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    }
    this.resizeObs = new ResizeObserver(() => this.refit());
    this.resizeObs.observe(this.el);
    void this.connect();
  }

  /** false: xterm leaves the key alone (the browser's default, e.g. Tab moves focus). */
  private key(e: KeyboardEvent): boolean {
    if (e.type !== 'keydown') return !(e.key === 'Tab' && !this.writable);
    if (e.key === ']' && e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      this.onLeave('back');
      return false;
    }
    if (!this.writable) {
      if (e.key === 'Tab') return false;
      if (e.key === 'Escape') {
        e.preventDefault();
        this.onLeave('back');
        return false;
      }
      return true;
    }
    if (e.key === 'Escape' && !e.ctrlKey && !e.altKey && !e.metaKey && !e.shiftKey) {
      const now = Date.now();
      if (now - this.lastEsc < DOUBLE_ESC_MS) {
        this.lastEsc = 0;
        e.preventDefault();
        this.onLeave('back');
        return false;
      }
      this.lastEsc = now;
    } else this.lastEsc = 0;
    return true;
  }

  focus(): void { this.term.focus(); }

  /** Fits the terminal to its panel; the mayor's PTY gets the new size too. */
  refit(): void {
    if (!this.el.isConnected || this.el.offsetParent === null) return;
    try { this.fit.fit(); } catch { return; }
    const size = `${this.term.cols}x${this.term.rows}`;
    if (this.writable && size !== this.lastSize && this.ws?.readyState === WebSocket.OPEN) {
      this.lastSize = size;
      this.ws.send(JSON.stringify({ type: 'resize', cols: this.term.cols, rows: this.term.rows }));
    }
  }

  /** Whether the agent is expected to run; becoming true reattaches a terminal that is not live. */
  setRunning(running: boolean): void {
    const was = this.running;
    this.running = running;
    if (running && (!was || this.status === 'waiting' || this.status === 'disconnected' || this.status === 'exited')) this.reattach();
  }

  /** Attach again now (a new run, the stream came back, or the person's Reconnect). */
  reattach(): void {
    if (this.disposed) return;
    if (this.status === 'connected' || this.status === 'connecting') return;
    clearTimeout(this.timer);
    this.attempts = 0;
    void this.connect();
  }

  /** The agent started again (a new run): reattach to see its output from the start. */
  restart(): void { this.reattach(); }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.resizeObs.disconnect();
    this.ws?.close(1000);
    this.term.dispose();
  }

  private set(s: TermStatus, detail = ''): void {
    this.status = s;
    this.detail = detail;
    this.onStatus(s, detail);
  }

  private send(bytes: Uint8Array): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  private async connect(): Promise<void> {
    if (this.disposed) return;
    const gen = ++this.gen;
    clearTimeout(this.timer);
    // One connection at a time: a reattach replaces whatever attempt was under way.
    const old = this.ws;
    this.ws = null;
    old?.close(1000);
    this.set(this.attempts === 0 ? 'connecting' : 'reconnecting', this.attempts === 0 ? '' : this.detail);
    let url: string;
    try {
      url = (await post<{ url: string }>(`${T(this.townId)}/agents/${encodeURIComponent(this.agentId)}/stream-ticket`)).url;
    } catch (e) {
      if (gen === this.gen) this.retry(e instanceof Error ? e.message : String(e));
      return;
    }
    if (this.disposed || gen !== this.gen) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${url}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let exited = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      // The scrollback is replayed on every attach: start from a clean screen so nothing doubles.
      this.term.reset();
      this.attempts = 0;
      this.lastSize = '';
      this.set('connected');
      this.refit();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      if (e.data instanceof ArrayBuffer) {
        this.term.write(new Uint8Array(e.data));
        return;
      }
      let m: { type?: string; code?: number | null; signal_name?: string | null; missed_bytes?: number; error?: string };
      try { m = JSON.parse(String(e.data)); } catch { return; }
      if (m.type === 'exit') {
        exited = true;
        const how = m.code !== null && m.code !== undefined ? `exit code ${m.code}` : `signal ${m.signal_name ?? '?'}`;
        this.term.write(`\r\n\x1b[2m[process ended: ${how}]\x1b[0m\r\n`);
        this.set('exited', how);
      } else if (m.type === 'lagged') {
        this.term.write(`\r\n\x1b[33m[skipped ${m.missed_bytes ?? 'some'} bytes: this view fell behind]\x1b[0m\r\n`);
      } else if (m.type === 'error') {
        this.term.write(`\r\n\x1b[31m[${m.error ?? 'error'}]\x1b[0m\r\n`);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws || this.disposed) return;
      this.ws = null;
      if (exited) return;
      // 1000/1011 with a reason from the relay usually means no such session (not started yet).
      this.retry(ev.reason || (this.status === 'connected' ? 'connection lost' : 'no live session'));
    };
    ws.onerror = () => {};
  }

  private retry(detail: string): void {
    if (this.disposed) return;
    if (!this.running) {
      // Nothing to attach to until the agent runs again: setRunning(true) reattaches.
      this.set('waiting', 'not running; reattaches when it runs');
      return;
    }
    this.attempts++;
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** (this.attempts - 1));
    this.set(this.attempts > 4 ? 'disconnected' : 'reconnecting', `${detail}; retrying in ${Math.max(1, Math.round(delay / 1000))}s`);
    this.timer = window.setTimeout(() => void this.connect(), delay);
  }
}
