// The API page (#/api): the Worker's OpenAPI 3.1 document (GET /api/openapi.json, generated from
// its route table and Rust types) rendered for a person: the credentials explained, the
// operations grouped by tag (method, path, summary, who may call it, parameters, body and reply
// types) with a filter, and every component schema as a field table behind an expander.
// `$ref`s are links to the schema on this page. In-page links go through the URL (`?at=<id>`),
// because the hash is the router's; the filter is `?q=`.

import type { Child } from '../dom';
import { fill, h } from '../dom';
import type { Health, Me } from '../api';
import { current, setParam } from '../router';
import type { View } from '../ui';

// ---- the parts of OpenAPI 3.1 (and JSON Schema 2020-12) this page reads ----

type Schema = boolean | SchemaObject;
interface SchemaObject {
  $ref?: string;
  type?: string | string[];
  format?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
}
interface Parameter { name: string; in: string; required?: boolean; description?: string; schema?: Schema }
interface MediaType { schema?: Schema }
interface Operation {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: Parameter[];
  requestBody?: { required?: boolean; description?: string; content?: Record<string, MediaType> };
  responses?: Record<string, { description?: string; content?: Record<string, MediaType> }>;
  security?: Record<string, string[]>[];
  deprecated?: boolean;
  'x-access'?: string;
}
interface SecurityScheme { type: string; description?: string; name?: string; in?: string; scheme?: string; bearerFormat?: string }
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation | Parameter[]>>;
  components?: { schemas?: Record<string, Schema>; securitySchemes?: Record<string, SecurityScheme> };
  security?: Record<string, string[]>[];
  tags?: { name: string; description?: string }[];
}

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'options', 'head', 'trace'];
/** Tags in the order a person meets them; any other tag follows, alphabetically. */
const TAG_ORDER = ['service', 'users', 'towns', 'beads', 'agents', 'mayor tools', 'webhooks'];

/** What each credential is for, in words (the document says what it is). */
const SCHEME_WORDS: Record<string, { title: string; who: string }> = {
  accessJwt: {
    title: 'Cloudflare Access JWT',
    who: 'People and scripts behind Cloudflare Access. Access verifies the person (or an Access service token) and adds this header to every request it lets through; the Worker checks its signature, issuer, audience and expiry.',
  },
  accessCookie: {
    title: 'Cloudflare Access cookie',
    who: 'Browsers, like this dashboard: the cookie Access sets after sign-in rides along on same-origin requests. Anything but GET must carry this server’s own Origin.',
  },
  agentBearer: {
    title: 'Agent bearer token',
    who: 'Agents in the town’s container. Each agent gets its own short-lived token, good only for its town, rig and agent (the mayor’s only for its town’s mayor tools).',
  },
  streamTicket: {
    title: 'Stream ticket',
    who: 'Terminal WebSockets, which a browser cannot put credentials on: mint one with POST …/agents/{agentId}/stream-ticket and open the terminal URL with ?ticket=. Valid 60 seconds, usable once, for that one terminal.',
  },
};

const schemeRank = (key: string) => { const i = Object.keys(SCHEME_WORDS).indexOf(key); return i < 0 ? 99 : i; };

function schemeTitle(key: string): string {
  return SCHEME_WORDS[key]?.title ?? key;
}

/** How a request carries a credential of this scheme. */
function howToSend(s: SecurityScheme): string {
  if (s.type === 'http' && s.scheme?.toLowerCase() === 'bearer') return `Authorization: Bearer <${s.bearerFormat ?? 'token'}>`;
  if (s.type === 'http' && s.scheme) return `Authorization: ${s.scheme} …`;
  if (s.type === 'apiKey' && s.in === 'header') return `${s.name}: <value>`;
  if (s.type === 'apiKey' && s.in === 'cookie') return `Cookie: ${s.name}=<value>`;
  if (s.type === 'apiKey' && s.in === 'query') return `?${s.name}=<value>`;
  return s.type;
}

const refName = (ref: string) => decodeURIComponent(ref.replace(/^#\/components\/schemas\//, ''));
const schemaId = (name: string) => `schema-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
const tagId = (tag: string) => `tag-${tag.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
const label = (tag: string) => tag.charAt(0).toUpperCase() + tag.slice(1);

/** A description's `code` spans as <code>. */
function prose(text: string | undefined): Child {
  if (!text) return null;
  return text.split(/(`[^`]+`)/).map((part) => (/^`[^`]+`$/.test(part) ? h('code', null, part.slice(1, -1)) : part));
}

/** A path with break opportunities after each slash, so a long one wraps on a phone. */
function pathEl(path: string): HTMLElement {
  const parts = path.split('/');
  return h('code', { class: 'api-path' }, parts.map((p, i) => (i < parts.length - 1 ? [p, '/', h('wbr')] : p)));
}

/** The schemas a schema names directly. */
function refsOf(s: Schema | undefined, out = new Set<string>()): Set<string> {
  if (!s || typeof s === 'boolean') return out;
  if (s.$ref) out.add(refName(s.$ref));
  for (const sub of [s.items, s.additionalProperties, ...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? []), ...Object.values(s.properties ?? {})]) refsOf(sub, out);
  return out;
}

/** A reply in the usual `{success: true, data}` envelope: the schema of `data`. */
function unwrapEnvelope(s: Schema | undefined): { schema: Schema | undefined; bare: boolean } {
  if (s && typeof s === 'object' && s.properties?.success && s.properties.data !== undefined) return { schema: s.properties.data, bare: false };
  return { schema: s, bare: true };
}

interface OpEntry { method: string; path: string; op: Operation; params: Parameter[]; el: HTMLElement; text: string; refs: Set<string>; tag: string }

export class ApiView implements View {
  el: HTMLElement;
  private body = h('div', { class: 'api-body' }, h('p', { class: 'muted' }, 'Loading the API description…'));
  private meta = h('p', { class: 'muted small api-meta' });
  private filter = h('input', {
    type: 'search', id: 'api-filter', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'e.g. sling, POST beads, RigMember, SlingInput',
  });
  private status = h('p', { class: 'muted small api-count', role: 'status', 'aria-live': 'polite' });
  private doc: OpenApiDoc | null = null;
  private ops: OpEntry[] = [];
  private tagSections = new Map<string, HTMLElement>();
  private schemaEls = new Map<string, HTMLElement>();
  private schemaRefs = new Map<string, Set<string>>();
  private authSection: HTMLElement | null = null;
  private applied: string | null = null;
  private revealed: string | null = null;
  private readonly onResize = () => this.markScrollable();

  constructor(private readonly me: Me) {
    this.filter.addEventListener('input', () => setParam('q', this.filter.value.trim() ? this.filter.value : null));
    this.el = h('div', { class: 'page api-page' },
      h('header', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'API'),
        h('p', { class: 'muted' }, 'Every route of this server: who may call it, what it takes and what it answers. Generated from the Worker’s route table, so it is always this server’s.'),
        this.meta),
      h('div', { class: 'filters api-filter', role: 'search' },
        h('label', { for: 'api-filter', class: 'label' }, 'Filter operations'), this.filter),
      this.status,
      this.body);
    // A table that has to scroll sideways becomes focusable (so the keyboard can scroll it);
    // checked again when an expander opens or the window changes size.
    this.el.addEventListener('toggle', () => this.markScrollable(), true);
    window.addEventListener('resize', this.onResize);
    void this.load();
  }

  dispose(): void {
    window.removeEventListener('resize', this.onResize);
  }

  update(): void {
    if (!this.doc) return;
    const q = current().params.get('q') ?? '';
    if (q !== this.applied) {
      if (document.activeElement !== this.filter) this.filter.value = q;
      this.applyFilter(q);
    }
    const at = current().params.get('at') ?? null;
    if (at !== this.revealed) {
      this.revealed = at;
      if (at) this.reveal(at);
    }
  }

  private async load(): Promise<void> {
    try {
      // Bare JSON (no {success, data} envelope), readable without credentials.
      const res = await fetch('/api/openapi.json', { credentials: 'same-origin' });
      if (!res.ok) throw new Error(`the server answered ${res.status} ${res.statusText}`.trim());
      this.doc = (await res.json()) as OpenApiDoc;
    } catch (e) {
      fill(this.body, h('p', { class: 'form-error', role: 'alert' }, `Could not load the API description: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    this.render();
    this.update();
    requestAnimationFrame(() => this.markScrollable());
    void this.loadHealth();
  }

  /** The server's version next to the document's. */
  private async loadHealth(): Promise<void> {
    try {
      const res = await fetch('/health', { credentials: 'same-origin' });
      const health = (await res.json()) as Health;
      if (health?.version) this.meta.append(` · server ${health.service ?? ''} ${health.version}`.replace(/\s+/g, ' '));
    } catch {
      /* the version is a nicety */
    }
  }

  // ---- rendering ----

  private render(): void {
    const doc = this.doc!;
    const schemas = doc.components?.schemas ?? {};
    for (const [name, s] of Object.entries(schemas)) this.schemaRefs.set(name, refsOf(s));
    fill(this.meta, `OpenAPI ${doc.openapi} · ${doc.info.title} ${doc.info.version} · `,
      h('a', { href: '/api/openapi.json', target: '_blank', rel: 'noopener' }, 'the document as JSON'));

    // Operations, grouped by their first tag.
    const byTag = new Map<string, OpEntry[]>();
    for (const [path, item] of Object.entries(doc.paths)) {
      const shared = (Array.isArray(item.parameters) ? item.parameters : []) as Parameter[];
      for (const method of METHODS) {
        const op = item[method] as Operation | undefined;
        if (!op || Array.isArray(op)) continue;
        const own = op.parameters ?? [];
        const params = [...shared.filter((p) => !own.some((o) => o.name === p.name && o.in === p.in)), ...own];
        const tag = op.tags?.[0] ?? 'other';
        const entry = this.operation(method, path, op, params, tag);
        byTag.set(tag, [...(byTag.get(tag) ?? []), entry]);
        this.ops.push(entry);
      }
    }
    const rank = (t: string) => { const i = TAG_ORDER.indexOf(t); return i < 0 ? TAG_ORDER.length : i; };
    const tags = [...byTag.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

    const toc = h('nav', { class: 'api-toc', 'aria-label': 'API sections' }, h('ul', { class: 'plain row' },
      h('li', null, this.anchor('api-auth', 'Credentials')),
      tags.map((t) => h('li', null, this.anchor(tagId(t), label(t)))),
      h('li', null, this.anchor('api-schemas', 'Schemas'))));

    this.authSection = this.credentials(doc);
    const opSections = tags.map((t) => {
      const id = tagId(t);
      const sec = h('section', { class: 'panel api-tag', id, 'aria-labelledby': `${id}-h` },
        h('h2', { id: `${id}-h`, tabindex: -1 }, label(t), h('span', { class: 'count', 'data-total': byTag.get(t)!.length }, String(byTag.get(t)!.length))),
        doc.tags?.find((x) => x.name === t)?.description ? h('p', { class: 'muted' }, prose(doc.tags!.find((x) => x.name === t)!.description)) : null,
        h('ul', { class: 'plain api-ops' }, byTag.get(t)!.map((e) => e.el)));
      this.tagSections.set(t, sec);
      return sec;
    });

    const names = Object.keys(schemas).sort((a, b) => a.localeCompare(b));
    const schemaList = h('div', { class: 'api-schemas' }, names.map((n) => {
      const el = this.schema(n, schemas[n]);
      this.schemaEls.set(n, el);
      return el;
    }));

    fill(this.body, toc, this.authSection,
      h('p', { class: 'muted small api-note' }, 'JSON replies come as ', h('code', null, '{"success": true, "data": …}'), '; the reply types below are those of ',
        h('code', null, 'data'), ' unless marked “bare JSON”. A failure is ', h('code', null, '{"success": false, "error": "…"}'),
        schemas.Error ? [' (', this.typeLink('Error'), ')'] : null, ' with its HTTP status: 400 bad input (the message names the field), 401/403 credentials, 404, 409 conflict or limit, 413, 415, 5xx.'),
      h('div', { class: 'api-groups' }, opSections),
      h('p', { class: 'empty api-none', hidden: true }),
      h('section', { class: 'panel', id: 'api-schemas', 'aria-labelledby': 'api-schemas-h' },
        h('h2', { id: 'api-schemas-h', tabindex: -1 }, 'Schemas', h('span', { class: 'count', 'data-total': names.length }, String(names.length))),
        h('p', { class: 'muted small' }, 'Open one to see its fields. While filtering, only the schemas the shown operations use (and those whose name matches) are listed.'),
        schemaList));
  }

  /** The credentials (security schemes) in words, and the access levels operations name. */
  private credentials(doc: OpenApiDoc): HTMLElement {
    const schemes = doc.components?.securitySchemes ?? {};
    const uses = new Map<string, number>();
    const levels = new Map<string, { text: string; n: number }>();
    for (const e of this.ops) {
      for (const req of e.op.security ?? doc.security ?? []) for (const k of Object.keys(req)) uses.set(k, (uses.get(k) ?? 0) + 1);
      const lvl = e.op['x-access'];
      if (lvl) levels.set(lvl, { text: (e.op.description ?? '').replace(/^Access:\s*/, ''), n: (levels.get(lvl)?.n ?? 0) + 1 });
    }
    const publicOps = this.ops.filter((e) => (e.op.security ?? doc.security ?? []).every((r) => Object.keys(r).length === 0)).length;
    return h('section', { class: 'panel api-auth', id: 'api-auth', 'aria-labelledby': 'api-auth-h' },
      h('h2', { id: 'api-auth-h', tabindex: -1 }, 'Credentials'),
      h('p', null, 'Each operation accepts any one of the credentials it lists. This dashboard sends your Cloudflare Access cookie, as ',
        h('strong', null, this.me.email ?? this.me.user_id), '.', publicOps ? ` ${publicOps} operation${publicOps > 1 ? 's need' : ' needs'} none.` : ''),
      h('ul', { class: 'plain api-schemes' }, Object.entries(schemes).sort(([a], [b]) => schemeRank(a) - schemeRank(b)).map(([key, s]) => h('li', { class: 'api-scheme', id: `scheme-${key}` },
        h('h3', null, schemeTitle(key), ' ', h('code', { class: 'muted' }, key)),
        h('p', { class: 'api-send' }, h('span', { class: 'muted' }, 'Send: '), h('code', null, howToSend(s))),
        s.description ? h('p', null, prose(s.description)) : null,
        SCHEME_WORDS[key] ? h('p', { class: 'muted' }, SCHEME_WORDS[key].who) : null,
        h('p', { class: 'muted small' }, `Accepted by ${uses.get(key) ?? 0} operation${uses.get(key) === 1 ? '' : 's'}.`)))),
      levels.size ? [
        h('h3', { class: 'api-sub' }, 'Who may call what'),
        h('p', { class: 'muted small' }, 'Besides a valid credential, each operation names who may call it (its access level, also shown on the operation).'),
        h('div', { class: 'table-wrap', 'data-label': 'Access levels' }, h('table', { class: 'table api-table api-access-table' },
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Access level'), h('th', { scope: 'col' }, 'Who'), h('th', { scope: 'col' }, 'Operations'))),
          h('tbody', null, [...levels].map(([lvl, v]) => h('tr', null, h('td', null, h('span', { class: 'badge api-access' }, lvl)), h('td', null, v.text), h('td', null, String(v.n))))))),
      ] : null);
  }

  private operation(method: string, path: string, op: Operation, params: Parameter[], tag: string): OpEntry {
    const refs = new Set<string>();
    const opId = op.operationId ?? `${method}-${path}`.replace(/[^A-Za-z0-9_-]+/g, '_');
    const id = `op-${opId}`;
    const security = op.security ?? this.doc!.security ?? [];
    const creds = security.flatMap((r) => Object.keys(r)).filter((k, i, a) => a.indexOf(k) === i);

    const rows: HTMLElement[] = [];
    const row = (term: string, ...def: Child[]) => rows.push(h('div', { class: 'api-row' }, h('dt', null, term), h('dd', null, ...def)));
    if (op.description || op['x-access']) {
      row('Access', prose(op.description?.replace(/^Access:\s*/, '')), op['x-access'] ? [' ', h('span', { class: 'badge api-access' }, op['x-access'])] : null);
    }
    row('Credentials', creds.length ? creds.map((k, i) => [i ? ', ' : '', h('span', { class: 'api-cred' }, schemeTitle(k))]) : h('span', null, 'none'));
    for (const p of params) refsOf(p.schema, refs);
    if (params.length) {
      row('Parameters', stackTable('api-params', `Parameters of ${method.toUpperCase()} ${path}`, ['Parameter', 'In', 'Type', 'Required'],
        params.map((p) => [
          [h('code', null, p.name), p.description ? h('div', { class: 'muted small' }, prose(p.description)) : null],
          p.in,
          [this.typeExpr(p.schema), this.constraints(p.schema)],
          p.required ? 'required' : h('span', { class: 'muted' }, 'optional'),
        ])));
    }
    if (op.requestBody) {
      const media = Object.entries(op.requestBody.content ?? {});
      for (const [type, m] of media) {
        refsOf(m.schema, refs);
        const note = [type !== 'application/json' ? type : '', op.requestBody.required ? '' : 'optional'].filter(Boolean).join(', ');
        row('Body', h('span', { class: 'api-type', 'data-role': 'body' }, this.typeExpr(m.schema)), note ? [' ', h('span', { class: 'muted small' }, note)] : null);
      }
    }
    for (const [code, r] of Object.entries(op.responses ?? {})) {
      if (code === 'default') continue;
      const media = Object.entries(r.content ?? {});
      if (!media.length) {
        row(`Reply ${code}`, h('span', { class: 'api-type', 'data-role': 'reply' }, r.description ?? 'no body'));
        continue;
      }
      for (const [type, m] of media) {
        const { schema, bare } = unwrapEnvelope(m.schema);
        refsOf(schema, refs);
        row(`Reply ${code}`, h('span', { class: 'api-type', 'data-role': 'reply' }, this.typeExpr(schema)),
          bare || type !== 'application/json' ? [' ', h('span', { class: 'muted small' }, bare ? `bare JSON${type !== 'application/json' ? `, ${type}` : ''}` : type)] : null);
      }
    }

    const el = h('li', { class: 'api-op', id, 'data-method': method, 'data-path': path },
      h('div', { class: 'api-op-head' },
        h('h3', { class: 'api-op-title', id: `${id}-h` }, h('span', { class: `api-method m-${method}` }, method.toUpperCase()), ' ', pathEl(path)),
        op.deprecated ? h('span', { class: 'badge' }, 'deprecated') : null),
      op.summary ? h('p', { class: 'api-summary' }, prose(op.summary)) : null,
      h('dl', { class: 'api-facts' }, rows));
    const text = [method, path, op.summary, op.description, op['x-access'], tag, op.operationId, ...params.map((p) => p.name), ...refs, ...creds.map(schemeTitle)]
      .filter(Boolean).join(' ').toLowerCase();
    return { method, path, op, params, el, text, refs, tag };
  }

  private schema(name: string, s: Schema): HTMLElement {
    const desc = typeof s === 'object' ? s.description : undefined;
    return h('details', { class: 'api-schema', id: schemaId(name), 'data-schema': name },
      h('summary', null, h('code', { class: 'api-schema-name' }, name), desc ? h('span', { class: 'muted small api-schema-desc' }, ' ', prose(firstSentence(desc))) : null),
      h('div', { class: 'api-schema-body' }, desc && firstSentence(desc) !== desc ? h('p', null, prose(desc)) : null, this.schemaBody(s, name)));
  }

  /** An object as a field table, an enum as its values, a union as its forms. */
  private schemaBody(s: Schema, name: string): Child {
    if (typeof s === 'boolean') return h('p', null, s ? 'Any JSON value.' : 'Nothing is valid.');
    if (s.properties) {
      const req = new Set(s.required ?? []);
      const fields = Object.entries(s.properties);
      return [
        stackTable('api-fields', `Fields of ${name}`, ['Field', 'Type', 'Required', 'Description'], fields.map(([f, fs]) => {
          const o = typeof fs === 'object' ? fs : {};
          return [
            h('code', null, f),
            [this.typeExpr(fs), this.constraints(fs)],
            req.has(f) ? 'required' : h('span', { class: 'muted' }, 'optional'),
            [prose(o.description), o.default !== undefined ? h('div', { class: 'muted small' }, 'Default: ', h('code', null, JSON.stringify(o.default))) : null],
          ];
        })),
        s.additionalProperties === false ? h('p', { class: 'muted small' }, 'Any other field is refused.') : null,
        s.additionalProperties && typeof s.additionalProperties === 'object' ? h('p', { class: 'muted small' }, 'Other fields: ', this.typeExpr(s.additionalProperties)) : null,
      ];
    }
    const variants = s.oneOf ?? s.anyOf;
    if (variants) {
      return [h('p', null, 'One of:'), h('ul', { class: 'api-variants' }, variants.map((v, i) => h('li', null,
        typeof v === 'object' && v.properties ? this.schemaBody(v, `${name}, form ${i + 1}`) : this.typeExpr(v),
        typeof v === 'object' && v.description ? h('div', { class: 'muted small' }, prose(v.description)) : null)))];
    }
    if (s.enum) return h('p', null, 'One of: ', s.enum.map((v, i) => [i ? ' ' : '', h('code', { class: 'api-enum' }, JSON.stringify(v))]));
    return h('p', null, this.typeExpr(s));
  }

  /** A type in one line: `Bead`, `array of Agent`, `string | null`, links for `$ref`s. */
  private typeExpr(s: Schema | undefined): Child {
    if (s === undefined || s === true) return h('span', { class: 'api-t' }, 'any');
    if (s === false) return h('span', { class: 'api-t' }, 'nothing');
    if (s.$ref) return this.typeLink(refName(s.$ref));
    const join = (parts: Child[]) => parts.map((p, i) => [i ? h('span', { class: 'muted' }, ' | ') : null, p]);
    if (s.const !== undefined) return h('code', { class: 'api-t' }, JSON.stringify(s.const));
    if (s.enum) return join(s.enum.map((v) => h('code', { class: 'api-t' }, JSON.stringify(v))));
    const union = s.anyOf ?? s.oneOf;
    if (union) return join(union.map((v) => this.typeExpr(v)));
    if (s.allOf) return s.allOf.map((v, i) => [i ? ' & ' : null, this.typeExpr(v)]);
    const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
    if (!types.length) return h('span', { class: 'api-t' }, 'any');
    return join(types.map((t) => {
      if (t === 'array') return ['array of ', this.typeExpr(s.items)];
      if (t === 'object' && s.properties) {
        const req = new Set(s.required ?? []);
        return ['{ ', Object.entries(s.properties).map(([k, v], i) => [i ? ', ' : '', h('code', null, `${k}${req.has(k) ? '' : '?'}`), ': ', this.typeExpr(v)]), ' }'];
      }
      if (t === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object') return ['map of ', this.typeExpr(s.additionalProperties)];
      if (t === 'object') return h('span', { class: 'api-t' }, 'object');
      return h('span', { class: 'api-t' }, s.format ? `${t} (${s.format})` : t);
    }));
  }

  /** Pattern and bounds, small, under the type. */
  private constraints(s: Schema | undefined): Child {
    if (!s || typeof s !== 'object') return null;
    const bits: Child[] = [];
    if (s.pattern) bits.push(['pattern ', h('code', null, s.pattern)]);
    if (s.minimum !== undefined && s.minimum !== 0) bits.push(`≥ ${s.minimum}`);
    if (s.maximum !== undefined) bits.push(`≤ ${s.maximum}`);
    return bits.length ? h('div', { class: 'muted small api-constraints' }, bits.map((b, i) => [i ? ', ' : null, b])) : null;
  }

  private typeLink(name: string): HTMLElement {
    return this.anchor(schemaId(name), name, 'api-ref');
  }

  /**
   * A link to an element of this page. The hash belongs to the router, so the target is a
   * parameter (`?at=<id>`): a copied link opens the page there.
   */
  private anchor(target: string, text: string, cls = ''): HTMLElement {
    return h('a', {
      href: `#/api?at=${encodeURIComponent(target)}`, class: cls,
      onclick: (e: MouseEvent) => {
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        this.revealed = target;
        this.reveal(target);
        setParam('at', target, false);
      },
    }, text);
  }

  /** Opens (if an expander), scrolls to and focuses an element of the page. */
  private reveal(id: string): void {
    const el = this.el.querySelector<HTMLElement>(`#${CSS.escape(id)}`);
    if (!el) return;
    // A target the filter hides: the filter gives way.
    if (el.closest('[hidden]')) {
      this.filter.value = '';
      setParam('q', null);
      this.applyFilter('');
    }
    if (el instanceof HTMLDetailsElement) el.open = true;
    el.scrollIntoView({ block: 'start' });
    const focus = el instanceof HTMLDetailsElement ? el.querySelector('summary') : el.querySelector<HTMLElement>('h2, h3');
    if (focus) {
      if (!focus.matches('summary, a, button, input') && !focus.hasAttribute('tabindex')) focus.setAttribute('tabindex', '-1');
      focus.focus({ preventScroll: true });
    }
  }

  // ---- filtering ----

  private applyFilter(q: string): void {
    this.applied = q;
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    const used = new Set<string>();
    for (const e of this.ops) {
      const ok = words.every((w) => e.text.includes(w));
      e.el.hidden = !ok;
      if (ok) {
        shown++;
        for (const r of e.refs) used.add(r);
      }
    }
    for (const [tag, sec] of this.tagSections) {
      const n = this.ops.filter((e) => e.tag === tag && !e.el.hidden).length;
      sec.hidden = n === 0;
      const count = sec.querySelector<HTMLElement>('h2 .count');
      if (count) count.textContent = words.length ? `${n} of ${count.dataset.total}` : String(count.dataset.total);
    }
    // The schemas the shown operations use (and what those use), and those whose name matches.
    if (words.length) for (const n of this.schemaEls.keys()) if (words.every((w) => n.toLowerCase().includes(w))) used.add(n);
    const queue = [...used];
    while (queue.length) for (const r of this.schemaRefs.get(queue.pop()!) ?? []) if (!used.has(r)) { used.add(r); queue.push(r); }
    let schemasShown = 0;
    for (const [n, el] of this.schemaEls) {
      el.hidden = !!words.length && !used.has(n);
      if (!el.hidden) schemasShown++;
    }
    const schemaSec = this.el.querySelector<HTMLElement>('#api-schemas');
    if (schemaSec) {
      schemaSec.hidden = schemasShown === 0;
      const count = schemaSec.querySelector<HTMLElement>('h2 .count');
      if (count) count.textContent = words.length ? `${schemasShown} of ${count.dataset.total}` : String(count.dataset.total);
    }
    if (this.authSection) this.authSection.hidden = !!words.length;
    const toc = this.el.querySelector<HTMLElement>('.api-toc');
    if (toc) toc.hidden = !!words.length;
    const none = this.el.querySelector<HTMLElement>('.api-none');
    if (none) {
      none.hidden = shown > 0;
      none.textContent = shown ? '' : `No operation matches “${q.trim()}”.`;
    }
    const total = this.ops.length;
    this.status.textContent = words.length
      ? `${shown} of ${total} operations match, using ${schemasShown} schema${schemasShown === 1 ? '' : 's'}.`
      : `${total} operations, ${this.schemaEls.size} schemas.`;
    requestAnimationFrame(() => this.markScrollable());
  }

  /** Tables wider than their box scroll inside it; such a box joins the Tab order. */
  private markScrollable(): void {
    for (const wrap of this.el.querySelectorAll<HTMLElement>('.table-wrap')) {
      const scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
      if (scrolls && !wrap.hasAttribute('tabindex')) {
        wrap.setAttribute('tabindex', '0');
        wrap.setAttribute('role', 'region');
        wrap.setAttribute('aria-label', wrap.dataset.label ?? 'Table');
      } else if (!scrolls && wrap.hasAttribute('tabindex')) {
        wrap.removeAttribute('tabindex');
        wrap.removeAttribute('role');
        wrap.removeAttribute('aria-label');
      }
    }
  }
}

/**
 * A table that becomes one block per row on a phone (see styles.css). The roles are spelled out
 * because a table whose rows are laid out as grids can lose its table semantics otherwise.
 */
function stackTable(cls: string, caption: string, heads: string[], rows: Child[][]): HTMLElement {
  return h('div', { class: 'table-wrap', 'data-label': caption }, h('table', { class: `table api-table api-stack ${cls}`, role: 'table' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' }, heads.map((t) => h('th', { scope: 'col', role: 'columnheader' }, t)))),
    h('tbody', { role: 'rowgroup' }, rows.map((cells) => h('tr', { role: 'row' }, cells.map((c) => h('td', { role: 'cell' }, c)))))));
}

function firstSentence(text: string): string {
  const m = /^(.+?[.:])(\s|$)/s.exec(text.trim());
  return (m ? m[1] : text.split('\n')[0]).trim();
}
