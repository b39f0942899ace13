// The towns page: the person's towns, a form to create one, and delete with confirmation.

import * as api from '../api';
import type { Town } from '../api';
import { busy, confirmDialog, errorSlot, field, fill, h, timeEl, toast } from '../dom';
import { goPage, href } from '../router';
import { empty, type View } from '../ui';

export class TownsView implements View {
  el: HTMLElement;
  private list = h('ul', { class: 'town-list', 'aria-label': 'Towns' });
  private towns: Town[] = [];

  constructor(private readonly userId: string) {
    const name = h('input', { name: 'name', required: true, maxlength: 100, placeholder: 'e.g. Alpha', autocomplete: 'off' });
    const err = errorSlot();
    const form = h('form', { class: 'inline-form', 'aria-label': 'Create a town' },
      field('Town name', name),
      h('button', { class: 'btn primary', type: 'submit' }, 'Create town'),
      err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show(null);
      const btn = form.querySelector('button');
      if (btn) btn.disabled = true;
      try {
        const t = await api.post<Town>(`/api/users/${encodeURIComponent(this.userId)}/towns`, { name: name.value.trim() });
        name.value = '';
        toast(`Town “${t.name}” created`);
        goPage('overview', t.id);
      } catch (e) {
        err.show(e instanceof Error ? e.message : String(e));
      } finally {
        if (btn) btn.disabled = false;
      }
    });
    this.el = h('div', { class: 'page' },
      h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Towns'), h('p', { class: 'muted' }, 'A town holds rigs (git repositories), their beads and the agents working on them.')),
      h('section', { class: 'panel' }, h('h2', null, 'New town'), form),
      h('section', { class: 'panel' }, h('h2', null, 'Your towns'), this.list));
    void this.load();
  }

  private async load(): Promise<void> {
    try {
      this.towns = await api.get<Town[]>(`/api/users/${encodeURIComponent(this.userId)}/towns`);
    } catch (e) {
      fill(this.list, h('li', { class: 'form-error', role: 'alert' }, `Could not load towns: ${e instanceof Error ? e.message : e}`));
      return;
    }
    this.render();
  }

  private render(): void {
    if (!this.towns.length) {
      fill(this.list, empty('No towns yet: create one above.'));
      return;
    }
    fill(this.list, this.towns.map((t) => h('li', { class: 'town-item' },
      h('a', { class: 'town-link', href: href('overview', t.id) }, h('strong', null, t.name)),
      h('span', { class: 'muted' }, 'created ', timeEl(t.created_at)),
      h('button', {
        class: 'btn danger small',
        'aria-label': `Delete town ${t.name}`,
        onclick: async (ev: Event) => {
          const ok = await confirmDialog(`Delete “${t.name}”?`, 'This deletes the town with all its rigs, beads, agents and their logs. It cannot be undone.', 'Delete town');
          if (!ok) return;
          await busy(ev.target as HTMLButtonElement, 'Deleting the town', async () => {
            await api.del(`/api/users/${encodeURIComponent(this.userId)}/towns/${encodeURIComponent(t.id)}`);
            toast(`Town “${t.name}” deleted`);
            await this.load();
          });
        },
      }, 'Delete'))));
  }

  update(): void {}
}
