// DOM helpers used by every view: `h()` builds elements declaratively, plus small shared
// widgets (toasts for errors, a confirmation dialog, relative times, status badges).
// There is no UI framework: views build their skeleton once and replace only the parts whose
// data changed, so forms keep what the person typed while live updates arrive.

export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown> | null;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
      } else if (k === 'class') {
        el.className = String(v);
      } else if (k === 'style' && typeof v === 'object') {
        Object.assign(el.style, v);
      } else if (k in el && !k.includes('-') && typeof v !== 'string') {
        // Properties such as `checked`, `disabled`, `value` as non-strings.
        (el as unknown as Record<string, unknown>)[k] = v;
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/**
 * Replaces `el`'s children only when `key` differs from the last render, so an unchanged list
 * keeps its DOM (and the focus inside it) when an unrelated event arrives.
 */
export function fillIfChanged(el: HTMLElement, key: string, render: () => Child): void {
  if (el.dataset.renderKey === key) return;
  const focusedId = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
  el.dataset.renderKey = key;
  fill(el, render());
  if (focusedId && el.contains(document.activeElement) === false) {
    const again = el.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focusedId)}"]`);
    again?.focus();
  }
}

// ---- toasts: errors and confirmations, announced to screen readers ----

let toastRegion: HTMLElement | null = null;

export function toastHost(): HTMLElement {
  toastRegion ??= h('div', { class: 'toasts', role: 'region', 'aria-label': 'Notifications', 'aria-live': 'assertive' });
  return toastRegion;
}

export function toast(message: string, kind: 'error' | 'info' = 'info'): void {
  const t = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', null, message),
    h('button', { class: 'icon-btn', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×'));
  toastHost().appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 12_000 : 4_000);
}

/** Shows an error in words: the API's own message, which names the field at fault. */
export function showError(e: unknown, context?: string): void {
  // One line: a multi-line server message (a git or gate dump) is cut to its first line.
  const msg = (e instanceof Error ? e.message : String(e)).trim().split('\n')[0].replace(/\bSome\((-?\d+)\)/g, '$1');
  toast(context ? `${context}: ${msg}` : msg, 'error');
}

// ---- confirmation dialog (native <dialog>: focus trap and Escape come with it) ----

export function confirmDialog(title: string, body: string, action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const opener = document.activeElement as HTMLElement | null;
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', null, body),
      h('div', { class: 'row end' },
        h('button', { class: 'btn', value: 'cancel', onclick: () => dlg.close('cancel') }, 'Cancel'),
        h('button', { class: 'btn danger', value: 'ok', onclick: () => dlg.close('ok') }, action)));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'ok');
      dlg.remove();
      opener?.focus();
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    dlg.querySelector<HTMLButtonElement>('button')?.focus();
  });
}

// ---- formatting ----

export function ago(iso: string | null | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return new Date(t).toLocaleDateString();
}

export function timeEl(iso: string | null | undefined): HTMLElement {
  return h('time', { datetime: iso ?? '', title: iso ?? '' }, ago(iso));
}

export function badge(text: string, kind = text): HTMLElement {
  return h('span', { class: `badge badge-${kind.replace(/[^a-z_-]/gi, '')}` }, text.replace(/_/g, ' '));
}

/** Runs an async action from a button: disables it meanwhile and reports failures in words. */
export async function busy(btn: HTMLButtonElement | null, what: string, fn: () => Promise<unknown>): Promise<boolean> {
  if (btn) btn.disabled = true;
  try {
    await fn();
    return true;
  } catch (e) {
    showError(e, what);
    return false;
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** An inline error slot for a form: role=alert so the message is read out when it appears. */
export function errorSlot(): HTMLElement & { show(msg: string | null): void } {
  const el = h('p', { class: 'form-error', role: 'alert', hidden: true }) as unknown as HTMLElement & { show(msg: string | null): void };
  el.show = (msg) => {
    el.textContent = msg ?? '';
    el.hidden = !msg;
  };
  return el;
}

export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('small', { class: 'hint' }, hint) : null);
}
