// The command palette (Ctrl+K / ⌘K) and the keyboard help (?): both native modal <dialog>s, so
// Escape closes them and focus returns to what was focused before.

import { h } from './dom';

export interface PaletteItem { label: string; hint: string; keywords?: string; run: () => unknown }

export const SHORTCUTS: [string, string][] = [
  ['Ctrl+K / ⌘K', 'Command palette: jump to a town, rig, bead or agent; sling work'],
  ['?', 'This list of keys'],
  ['t', 'Focus the open terminal'],
  ['Esc Esc  or  Ctrl+]', 'Leave the mayor’s terminal (read-only terminals: Tab or Esc)'],
  ['m', 'Maximise or restore the terminal panel'],
  ['Esc', 'Close the top drawer, dialog or menu'],
  ['g then o / q / l / e / c / s', 'Go to overview, merge queue, mail, escalations, convoys, settings'],
  ['g then a', 'Go to the API reference'],
  ['← →', 'Move between tabs (terminals, board / list)'],
];

function modal(cls: string, label: string, ...children: HTMLElement[]): HTMLDialogElement {
  const opener = document.activeElement as HTMLElement | null;
  const dlg = h('dialog', { class: `modal ${cls}`, 'aria-label': label }, ...children);
  dlg.addEventListener('close', () => { dlg.remove(); opener?.focus?.(); });
  // A click on the backdrop (outside the box) closes it.
  dlg.addEventListener('click', (e) => { if (e.target === dlg) dlg.close(); });
  document.body.appendChild(dlg);
  dlg.showModal();
  return dlg;
}

export function openHelp(): void {
  if (document.querySelector('dialog.help')) return;
  const close = h('button', { class: 'btn', onclick: () => dlg.close() }, 'Close');
  const dlg = modal('help', 'Keyboard shortcuts',
    h('h2', null, 'Keyboard shortcuts'),
    h('table', { class: 'table keys' }, h('tbody', null, SHORTCUTS.map(([k, v]) => h('tr', null, h('th', { scope: 'row' }, h('kbd', null, k)), h('td', null, v))))),
    h('p', { class: 'help-api' }, 'Scripting Gastown? The ', h('a', { href: '#/api', onclick: () => dlg.close() }, 'API reference'),
      ' lists every route, who may call it and its types (OpenAPI 3.1 at ', h('code', null, '/api/openapi.json'), ').'),
    h('div', { class: 'row end' }, close));
  close.focus();
}

export function openPalette(items: () => PaletteItem[], dynamic: (q: string) => PaletteItem[]): void {
  if (document.querySelector('dialog.palette')) return;
  const input = h('input', {
    type: 'text', role: 'combobox', 'aria-expanded': 'true', 'aria-controls': 'palette-list', 'aria-autocomplete': 'list',
    'aria-label': 'Search towns, rigs, beads, agents, or type work to sling', placeholder: 'Jump to… or type a bead title to sling', autocomplete: 'off',
  });
  const list = h('ul', { class: 'plain palette-list', id: 'palette-list', role: 'listbox', 'aria-label': 'Results' });
  const dlg = modal('palette', 'Command palette', input, list, h('p', { class: 'muted small' }, '↑ ↓ to choose, Enter to go, Esc to close'));
  let shown: PaletteItem[] = [];
  let sel = 0;
  const all = items();
  const render = () => {
    const q = input.value.trim().toLowerCase();
    const words = q.split(/\s+/).filter(Boolean);
    shown = [...all.filter((i) => words.every((w) => `${i.label} ${i.hint} ${i.keywords ?? ''}`.toLowerCase().includes(w))).slice(0, 30), ...dynamic(input.value.trim())];
    sel = Math.min(sel, Math.max(0, shown.length - 1));
    list.replaceChildren(...shown.map((i, n) => h('li', {
      role: 'option', id: `pal-${n}`, 'aria-selected': String(n === sel), class: n === sel ? 'sel' : '',
      onclick: () => run(n),
    }, h('span', null, i.label), h('span', { class: 'muted small' }, i.hint))));
    if (!shown.length) list.appendChild(h('li', { class: 'muted', role: 'option', 'aria-disabled': 'true' }, 'Nothing matches.'));
    input.setAttribute('aria-activedescendant', shown.length ? `pal-${sel}` : '');
    list.querySelector('.sel')?.scrollIntoView({ block: 'nearest' });
  };
  const run = (n: number) => {
    const item = shown[n];
    if (!item) return;
    dlg.close();
    void item.run();
  };
  input.addEventListener('input', () => { sel = 0; render(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') { e.preventDefault(); sel = Math.min(sel + 1, shown.length - 1); render(); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); sel = Math.max(sel - 1, 0); render(); }
    else if (e.key === 'Enter') { e.preventDefault(); run(sel); }
  });
  render();
  input.focus();
}
