// Town settings: agent runtime and model, environment variables and git tokens (secrets come
// back masked and are never shown again; sending a masked value back keeps the stored secret),
// refinery gates, capacity limits and escalation timing. Saved with one PATCH of what changed.

import * as api from '../api';
import type { TownConfig } from '../api';
import { errorSlot, field, fill, h, toast } from '../dom';
import type { TownState } from '../store';
import { section, type View } from '../ui';

const RUNTIMES = ['demo', 'claude', 'codex', 'gemini', 'opencode', 'kilo', 'custom'];
const SECRET_WORDS = ['token', 'secret', 'password', 'passwd', 'key', 'auth', 'credential', 'private'];
const looksSecret = (k: string) => SECRET_WORDS.some((w) => k.toLowerCase().includes(w));

interface EnvRow { key: HTMLInputElement; value: HTMLInputElement; stored: string | null; removed: boolean; el: HTMLElement }

export class SettingsView implements View {
  el: HTMLElement;
  private form = h('form', { class: 'settings', 'aria-label': 'Town settings' });
  private cfg: TownConfig | null = null;
  private envRows: EnvRow[] = [];
  private err = errorSlot();

  constructor(private readonly s: TownState) {
    this.el = h('div', { class: 'page' }, h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Settings'),
      h('p', { class: 'muted' }, 'Applies to agents started from now on.')), this.form);
    fill(this.form, h('p', { class: 'muted' }, 'Loading…'));
    void this.load();
  }

  update(): void {}

  private async load(): Promise<void> {
    try {
      this.cfg = await api.get<TownConfig>(`${api.T(this.s.townId)}/config`);
      // The per-rig overrides need the town's rigs: wait for them if they are still loading.
      if (!this.s.town) {
        await new Promise<void>((resolve) => {
          const off = this.s.subscribe(() => { if (this.s.town || this.s.loadError) { off(); resolve(); } });
        });
      }
      this.render();
    } catch (e) {
      fill(this.form, h('p', { class: 'form-error', role: 'alert' }, `Could not load the settings: ${e instanceof Error ? e.message : e}`));
    }
  }

  private render(): void {
    const c = this.cfg!;
    const runtime = h('select', { name: 'runtime' }, RUNTIMES.map((r) => h('option', { value: r, selected: c.agent.runtime === r }, r)));
    const model = h('input', { name: 'model', value: c.agent.model ?? '', placeholder: 'the CLI default', autocomplete: 'off' });
    const command = h('input', { name: 'command', value: c.agent.command ?? '', placeholder: 'my-agent --prompt-file {prompt_file} --model {model}', autocomplete: 'off' });
    const commandField = field('Command (custom runtime)', command, '{prompt_file} and {model} are substituted.');
    const syncCommand = () => { commandField.hidden = runtime.value !== 'custom'; };
    runtime.addEventListener('change', syncCommand);
    syncCommand();

    const envList = h('div', { class: 'env-list' });
    this.envRows = [];
    const addEnv = (k: string, v: string | null) => {
      const masked = api.isMasked(v);
      const key = h('input', { 'aria-label': 'Variable name', value: k, placeholder: 'NAME', readonly: v !== null, autocomplete: 'off' });
      // A stored secret is never put back into an input: the field shows only the mask, and an
      // empty field means "keep it".
      const value = h('input', {
        'aria-label': `Value of ${k || 'the new variable'}`,
        type: masked || looksSecret(k) ? 'password' : 'text',
        value: masked ? '' : v ?? '',
        placeholder: masked ? `${v} (saved; type to replace)` : 'value',
        autocomplete: 'off',
      });
      key.addEventListener('input', () => { value.type = looksSecret(key.value) ? 'password' : 'text'; });
      const row: EnvRow = { key, value, stored: v, removed: false, el: h('div') };
      row.el = h('div', { class: 'env-row' }, key, value,
        h('button', { type: 'button', class: 'btn small', 'aria-label': `Remove ${k || 'variable'}`, onclick: () => { row.removed = true; row.el.remove(); } }, 'Remove'));
      this.envRows.push(row);
      envList.appendChild(row.el);
    };
    for (const [k, v] of Object.entries(c.env_vars)) addEnv(k, v);

    const secretInput = (name: string, stored: string | null) => h('input', {
      name, type: 'password', value: '', autocomplete: 'new-password',
      placeholder: stored ? `${stored} (saved; type to replace)` : 'not set',
    });
    const gh = secretInput('github_token', c.git_auth.github_token);
    const gl = secretInput('gitlab_token', c.git_auth.gitlab_token);
    const clearGh = h('input', { type: 'checkbox', name: 'clear-github' });
    const clearGl = h('input', { type: 'checkbox', name: 'clear-gitlab' });
    const glUrl = h('input', { name: 'gitlab_instance_url', value: c.git_auth.gitlab_instance_url ?? '', placeholder: 'https://gitlab.com', autocomplete: 'off' });

    const gates = h('textarea', { name: 'gates', rows: 3, placeholder: 'npm test\ncargo clippy -- -D warnings' });
    gates.value = c.refinery.gates.join('\n');
    const gateTimeout = h('input', { name: 'gate_timeout_secs', type: 'number', min: 1, value: String(c.refinery.gate_timeout_secs) });
    const strategy = h('select', { name: 'merge_strategy' },
      h('option', { value: 'direct', selected: c.refinery.merge_strategy === 'direct' }, 'direct (push the merge)'),
      h('option', { value: 'pr', selected: c.refinery.merge_strategy === 'pr' }, 'pr (pull request — not implemented yet)'));
    const perRig = h('input', { name: 'max_polecats_per_rig', type: 'number', min: 0, value: String(c.capacity.max_polecats_per_rig) });
    const perTown = h('input', { name: 'max_polecats_per_town', type: 'number', min: 0, value: String(c.capacity.max_polecats_per_town) });
    const reesc = h('input', { name: 'reescalate_after_secs', type: 'number', min: 1, value: String(c.escalations.reescalate_after_secs) });
    const maxReesc = h('input', { name: 'max_reescalations', type: 'number', min: 0, value: String(c.escalations.max_reescalations) });

    // Per-rig and per-role runtime overrides: "inherit" and an empty model mean no override.
    const overrideRows: { kind: 'rig' | 'role'; key: string; runtime: HTMLSelectElement; model: HTMLInputElement; had: boolean }[] = [];
    const overrideRow = (kind: 'rig' | 'role', key: string, label: string) => {
      const cur = (kind === 'rig' ? c.agent.rig_overrides : c.agent.role_overrides)[key] ?? {};
      const rt = h('select', { 'aria-label': `Runtime for ${label}` }, h('option', { value: '' }, 'inherit'), RUNTIMES.map((r) => h('option', { value: r, selected: cur.runtime === r }, r)));
      const md = h('input', { 'aria-label': `Model for ${label}`, value: cur.model ?? '', placeholder: 'inherit', autocomplete: 'off' });
      overrideRows.push({ kind, key, runtime: rt, model: md, had: !!(cur.runtime || cur.model) });
      return h('tr', null, h('th', { scope: 'row' }, label), h('td', null, rt), h('td', null, md));
    };
    const overrides = h('div', { class: 'table-wrap' }, h('table', { class: 'table overrides' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'For'), h('th', { scope: 'col' }, 'Runtime'), h('th', { scope: 'col' }, 'Model'))),
      h('tbody', null, ['mayor', 'witness', 'refinery', 'polecat'].map((r) => overrideRow('role', r, `role ${r}`)), this.s.rigs.map((r) => overrideRow('rig', r.id, `rig ${r.name}`)))));
    const wc = c.witness;
    const wf = (name: keyof NonNullable<TownConfig['witness']>) => h('input', { name: `witness_${name}`, type: 'number', min: 1, value: String(wc?.[name] ?? '') });
    const wTick = wf('tick_secs');
    const wStall = wf('stall_after_secs');
    const wEsc = wf('escalate_stall_after_secs');
    const wGupp = wf('gupp_after_secs');
    const wStart = wf('start_timeout_secs');
    const save = h('button', { class: 'btn primary', type: 'submit' }, 'Save settings');
    fill(this.form,
      section('Agents', h('div', { class: 'grid-form' }, field('Runtime', runtime, 'demo runs a built-in agent without an LLM.'), field('Model', model), h('div', { class: 'span-all' }, commandField))),
      section('Overrides per role and rig', h('p', { class: 'muted small' }, 'A role’s choice wins over a rig’s, which wins over the town’s.'), overrides),
      section('Environment variables', h('p', { class: 'muted small' }, 'Given to every agent. Names with token, secret, key, password… are secrets: shown masked, never again in full.'), envList,
        h('button', { type: 'button', class: 'btn small', onclick: () => { addEnv('', null); envList.lastElementChild?.querySelector('input')?.focus(); } }, 'Add variable')),
      section('Git credentials', h('div', { class: 'grid-form' },
        h('div', null, field('GitHub token', gh), h('label', { class: 'check' }, clearGh, ' remove the saved token')),
        h('div', null, field('GitLab token', gl), h('label', { class: 'check' }, clearGl, ' remove the saved token')),
        field('GitLab instance URL', glUrl))),
      section('Refinery', h('div', { class: 'grid-form' }, h('div', { class: 'span-all' }, field('Quality gates (one command per line)', gates, 'Each must exit 0 in the merged tree before anything is pushed.')),
        field('Gate timeout (seconds)', gateTimeout), field('Merge strategy', strategy))),
      section('Capacity', h('div', { class: 'grid-form' }, field('Polecats per rig', perRig), field('Polecats per town', perTown))),
      section('Escalations', h('div', { class: 'grid-form' }, field('Raise again after (seconds)', reesc), field('At most (times)', maxReesc))),
      wc ? section('Witness', h('div', { class: 'grid-form' }, field('Look every (seconds)', wTick), field('Stalled after silence (seconds)', wStall),
        field('Escalate a stall after (seconds)', wEsc), field('Unworked hook after (seconds)', wGupp), field('Start timeout (seconds)', wStart))) : null,
      h('div', { class: 'form-actions sticky-actions' }, save, this.err));

    this.form.onsubmit = async (ev) => {
      ev.preventDefault();
      this.err.show(null);
      const num = (el: HTMLInputElement, name: string) => {
        const n = Number(el.value);
        if (el.value.trim() === '' || !Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number`);
        return n;
      };
      let body: Record<string, unknown>;
      try {
        const env: Record<string, string | null> = {};
        const seen = new Set<string>();
        for (const r of this.envRows) {
          const k = r.key.value.trim();
          if (r.removed) { if (r.stored !== null) env[k] = null; continue; }
          if (!k) { if (r.value.value) throw new Error('every environment variable needs a name'); continue; }
          if (seen.has(k)) throw new Error(`environment variable ${k} appears twice`);
          seen.add(k);
          if (r.stored !== null && api.isMasked(r.stored) && r.value.value === '') env[k] = r.stored; // keep the secret
          else if (r.stored !== r.value.value) env[k] = r.value.value;
        }
        const git: Record<string, string | null> = { gitlab_instance_url: glUrl.value.trim() || null };
        if (clearGh.checked) git.github_token = null; else if (gh.value) git.github_token = gh.value;
        if (clearGl.checked) git.gitlab_token = null; else if (gl.value) git.gitlab_token = gl.value;
        const rigO: Record<string, unknown> = {};
        const roleO: Record<string, unknown> = {};
        for (const o of overrideRows) {
          const set = o.runtime.value || o.model.value.trim();
          if (!set && !o.had) continue;
          (o.kind === 'rig' ? rigO : roleO)[o.key] = set ? { runtime: o.runtime.value || null, model: o.model.value.trim() || null } : null;
        }
        body = {
          agent: { runtime: runtime.value, model: model.value.trim() || null, command: command.value.trim() || null, rig_overrides: rigO, role_overrides: roleO },
          env_vars: env,
          git_auth: git,
          refinery: { gates: gates.value.split('\n').map((g) => g.trim()).filter(Boolean), gate_timeout_secs: num(gateTimeout, 'Gate timeout'), merge_strategy: strategy.value },
          capacity: { max_polecats_per_rig: num(perRig, 'Polecats per rig'), max_polecats_per_town: num(perTown, 'Polecats per town') },
          escalations: { reescalate_after_secs: num(reesc, 'Raise again after'), max_reescalations: num(maxReesc, 'At most') },
        };
        if (wc) {
          body.witness = { tick_secs: num(wTick, 'Look every'), stall_after_secs: num(wStall, 'Stalled after'), escalate_stall_after_secs: num(wEsc, 'Escalate a stall after'),
            gupp_after_secs: num(wGupp, 'Unworked hook after'), start_timeout_secs: num(wStart, 'Start timeout') };
        }
      } catch (e) {
        this.err.show(e instanceof Error ? e.message : String(e));
        return;
      }
      save.disabled = true;
      try {
        this.cfg = await api.patch<TownConfig>(`${api.T(this.s.townId)}/config`, body);
        toast('Settings saved');
        this.render();
      } catch (e) {
        this.err.show(`Not saved — ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        save.disabled = false;
      }
    };
  }
}
