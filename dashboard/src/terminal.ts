// One live agent terminal: xterm.js plus its WebSocket. A browser cannot put credentials on a
// WebSocket upgrade, so each connection first mints a one-use stream ticket and opens the URL it
// returns. Binary frames are terminal bytes (scrollback first, then live output), text frames are
// JSON control (exit, lagged, error). Only the mayor's terminal is writable: keystrokes go up as
// binary frames and its size follows the panel; other terminals are view-only.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { post, T } from './api';
import { h } from './dom';

export type TermStatus = 'connecting' | 'connected' | 'reconnecting' | 'exited' | 'disconnected';

const MAX_DELAY_MS = 15_000;
const MAX_ATTEMPTS = 6;

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
  status: TermStatus = 'connecting';
  onStatus: (s: TermStatus, detail: string) => void = () => {};

  constructor(readonly townId: string, readonly agentId: string, readonly label: string, readonly writable: boolean) {
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: writable,
      disableStdin: !writable,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      screenReaderMode: false,
      theme: { background: '#0b0f14', foreground: '#d6dde6', cursor: writable ? '#f5c542' : '#0b0f14' },
    });
    this.term.loadAddon(this.fit);
    this.el = h('div', {
      class: 'term-host',
      role: 'region',
      'aria-label': `${label} terminal${writable ? '' : ' (read-only)'}`,
      'data-agent-id': agentId,
    });
    this.term.open(this.el);
    if (writable) {
      this.term.onData((d) => this.send(this.encoder.encode(d)));
      this.term.onBinary((d) => this.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    }
    this.resizeObs = new ResizeObserver(() => this.refit());
    this.resizeObs.observe(this.el);
    void this.connect();
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

  /** The agent started again (a new run): reattach to see its output from the start. */
  restart(): void {
    if (this.status === 'connected' || this.status === 'connecting') return;
    clearTimeout(this.timer);
    this.attempts = 0;
    void this.connect();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    this.resizeObs.disconnect();
    this.ws?.close(1000);
    this.term.dispose();
  }

  private set(s: TermStatus, detail = ''): void {
    this.status = s;
    this.onStatus(s, detail);
  }

  private send(bytes: Uint8Array): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  private async connect(): Promise<void> {
    if (this.disposed) return;
    this.set(this.attempts === 0 ? 'connecting' : 'reconnecting');
    let url: string;
    try {
      url = (await post<{ url: string }>(`${T(this.townId)}/agents/${encodeURIComponent(this.agentId)}/stream-ticket`)).url;
    } catch (e) {
      return this.retry(e instanceof Error ? e.message : String(e));
    }
    if (this.disposed) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${url}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let exited = false;
    ws.onopen = () => {
      // The scrollback is replayed on every attach: start from a clean screen so nothing doubles.
      this.term.reset();
      this.attempts = 0;
      this.lastSize = '';
      this.set('connected');
      this.refit();
    };
    ws.onmessage = (e) => {
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
      this.retry(ev.reason || 'connection closed');
    };
    ws.onerror = () => {};
  }

  private retry(detail: string): void {
    if (this.disposed) return;
    this.attempts++;
    if (this.attempts > MAX_ATTEMPTS) {
      // Probably no session to attach to (the agent has not run yet): wait for its next start
      // (the town stream says so and calls restart()) or for the person's "Reconnect".
      this.set('disconnected', detail);
      return;
    }
    const delay = Math.min(MAX_DELAY_MS, 500 * 2 ** (this.attempts - 1));
    this.set('reconnecting', `${detail}; retrying in ${Math.max(1, Math.round(delay / 1000))}s`);
    this.timer = window.setTimeout(() => void this.connect(), delay);
  }
}
