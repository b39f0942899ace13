// Pieces shared by several views: agent and bead cards, role colours and statuses, and the
// words for each event type in the activity feed and timelines.

import type { Agent, Bead, BeadEvent, MergeEntry } from './api';
import { badge, h, timeEl } from './dom';
import { openDrawer } from './router';
import type { TownState } from './store';

export interface View {
  el: HTMLElement;
  /** The town state changed (or the route's parameters did). */
  update(): void;
  dispose?(): void;
}

export const ROLES = ['mayor', 'witness', 'refinery', 'polecat'] as const;

/**
 * What the person sees as an agent's status: active (its process runs), idle, stalled, dead.
 * The agent row says working/idle/stalled/dead; a live session also counts as active.
 */
export function agentStatus(a: Agent, s: TownState): 'active' | 'idle' | 'stalled' | 'dead' {
  if (a.status === 'dead') return 'dead';
  if (a.status === 'stalled') return 'stalled';
  const session = s.sessions.find((x) => x.agent_id === a.id);
  if (a.status === 'working' || session?.status === 'active') return 'active';
  return 'idle';
}

export function roleTag(role: string): HTMLElement {
  return h('span', { class: `role-tag role-${role}` }, role);
}

export function agentCard(a: Agent, s: TownState): HTMLElement {
  const st = agentStatus(a, s);
  const hook = a.hook_bead_id ? s.bead(a.hook_bead_id) : undefined;
  return h('button', {
    class: `card agent-card role-${a.role}`,
    'data-agent-id': a.id,
    'data-focus-key': `agent-${a.id}`,
    onclick: () => openDrawer({ kind: 'agent', agentId: a.id }),
  },
  h('div', { class: 'card-top' }, h('strong', { class: 'agent-name' }, a.name), badge(st, `st-${st}`)),
  h('div', { class: 'card-sub' }, roleTag(a.role), a.rig_id ? h('span', { class: 'muted' }, s.rig(a.rig_id)?.name ?? '') : h('span', { class: 'muted' }, 'town')),
  h('div', { class: 'card-hook muted' }, a.hook_bead_id ? `⚓ ${a.hook_bead_id}${hook ? ` · ${hook.title}` : ''}` : 'no hook'));
}

export function beadCard(b: Bead, s: TownState): HTMLElement {
  return h('button', {
    class: `card bead-card prio-${b.priority}`,
    'data-bead-id': b.id,
    'data-focus-key': `bead-${b.id}`,
    onclick: () => b.rig_id && openDrawer({ kind: 'bead', rigId: b.rig_id, beadId: b.id }),
  },
  h('div', { class: 'card-top' }, h('code', { class: 'bead-id' }, b.id), badge(b.priority, `prio-${b.priority}`)),
  h('div', { class: 'bead-title' }, b.title),
  h('div', { class: 'card-sub muted' }, b.assignee_agent_id ? `→ ${s.agentName(b.assignee_agent_id)}` : 'unassigned', ' · ', timeEl(b.updated_at)));
}

/** One event in words, e.g. "gt-4k2x9 hooked to toast". */
export function describeEvent(e: BeadEvent, s: TownState): string {
  const who = e.agent_id ? s.agentName(e.agent_id) : null;
  const bead = s.bead(e.bead_id);
  const mr = bead ? undefined : s.mergeQueue.find((m) => m.id === e.bead_id);
  const source = mr ? s.bead(mr.source_bead_id) : undefined;
  const agentBead = !bead && !mr ? s.agent(e.bead_id) : undefined;
  if (agentBead && e.event_type === 'agent_spawned') return `${agentLabel(agentBead)} started`;
  const other = !bead && !mr && !agentBead ? entityName(e.bead_id, s) : null;
  const what = bead ? `“${bead.title}” (${e.bead_id})`
    : agentBead ? agentLabel(agentBead)
    : other ? other
    : mr ? `merge request ${e.bead_id}${source ? ` for “${source.title}”` : ` for ${mr.source_bead_id}`}` : e.bead_id;
  const arrow = e.old_value && e.new_value ? `${e.old_value} → ${e.new_value}` : e.new_value ?? '';
  switch (e.event_type) {
    case 'created': return `${what} created`;
    case 'status_changed': return `${what}: ${humanError(arrow).line}`;
    case 'hooked': return `${what} hooked to ${who ?? 'an agent'}`;
    case 'unhooked': return `${what} unhooked from ${who ?? 'its agent'}`;
    case 'assigned': return `${what} assigned to ${who ?? e.new_value ?? '—'}`;
    case 'agent_registered': return `agent ${String(e.metadata?.name ?? who ?? e.bead_id)} joined as ${e.new_value ?? ''}`;
    case 'agent_spawned': return `${who ?? 'an agent'} started on ${what}`;
    case 'agent_exited': return `${who ?? 'an agent'} exited${e.new_value ? ` (${humanError(e.new_value).line})` : ''}`;
    case 'dispatch_failed': return `starting ${who ?? 'an agent'} failed${e.new_value ? `: ${humanError(e.new_value).line}` : ''}`;
    case 'review_submitted': return `${what} submitted for merge`;
    case 'review_completed': return mr ? `${what}: ${e.new_value ?? 'done'}` : `merge of ${what}: ${e.new_value ?? 'done'}`;
    case 'closed': return `${what} closed`;
    case 'reopened': return `${what} reopened`;
    case 'mail_sent': return `mail: ${bead?.title ?? e.bead_id}`;
    case 'mail_read': return `mail read by ${who ?? 'an agent'}`;
    case 'escalated': return `escalation: ${e.new_value ? humanError(e.new_value).line : what}`;
    case 'queued': return `${what} queued (no free polecat)`;
    case 'checkpoint': return `${who ?? 'an agent'} checkpointed`;
    case 'deleted': return `${e.bead_id} deleted`;
    default: return `${what}: ${e.event_type.replace(/_/g, ' ')} ${arrow}`.trim();
  }
}

export function eventItem(e: BeadEvent, s: TownState): HTMLElement {
  return h('li', { class: `event ev-${e.event_type}` },
    h('button', {
      class: 'link event-link',
      'data-focus-key': `event-${e.id}`,
      onclick: () => openDrawer({ kind: 'event', eventId: e.id }),
    }, describeEvent(e, s)),
    ' ', timeEl(e.created_at));
}

export function empty(text: string): HTMLElement {
  return h('p', { class: 'empty' }, text);
}

export function unavailable(what: string): HTMLElement {
  return h('p', { class: 'empty' }, `${what} are not available on this server yet (it answered “no route”). Update the Worker to see them here.`);
}

export function section(title: string, ...body: (Node | null)[]): HTMLElement {
  const id = `sec-${title.toLowerCase().replace(/[^a-z]+/g, '-')}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...body);
}

export function progress(done: number, total: number, label: string): HTMLElement {
  const pct = total ? Math.round((done / total) * 100) : 0;
  return h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total, 'aria-valuenow': done, 'aria-label': label },
    h('div', { class: 'progress-fill', style: { width: `${pct}%` } }));
}

// ---- errors as one humane line (the raw log behind an expander) ----

/** Rust's `Some(128)` / `None` exit codes, container paths and git's noise, as one line. */
export function humanError(raw: string | null | undefined): { line: string; raw: string | null } {
  const text = String(raw ?? '').replace(/\r/g, '').trim();
  if (!text) return { line: 'failed, with no output', raw: null };
  const tidy = (x: string) => x
    .replace(/\bexit(?: status)? Some\((-?\d+)\)/g, 'exit code $1')
    .replace(/\(exit None\)|\bexit None\b/g, '(killed by a signal)')
    .replace(/\bSome\((-?\d+)\)/g, '$1')
    .replace(/(?:\/[\w.@+-]+){2,}\/(workspace|rigs|worktrees|home)\/[^\s:'"]*/g, '…')
    .replace(/\s+/g, ' ').trim();
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  let line: string;
  if (/repository not found|could not read from remote|does not appear to be a git repository|authentication failed|not found$/im.test(text) && /git|fatal|remote/i.test(text)) {
    line = 'cannot reach the repository: not found or no access';
  } else if (/CONFLICT|merge conflict/i.test(text)) {
    const files = [...text.matchAll(/CONFLICT \([^)]*\): (?:Merge conflict in )?(\S+)/g)].map((m) => m[1]);
    line = `merge conflict${files.length ? ` in ${files.slice(0, 3).join(', ')}${files.length > 3 ? '…' : ''}` : ''}`;
  } else {
    const first = tidy(lines[0]);
    // "gate `npm test` failed (exit Some(1)):" with nothing after it.
    line = lines.length === 1 && /:\s*$/.test(first) ? `${first.replace(/:\s*$/, '')}, with no output` : first;
  }
  if (line.length > 200) line = `${line.slice(0, 197)}…`;
  return { line, raw: lines.length > 1 || line !== text ? text : null };
}

export function errorBlock(raw: string | null | undefined, summary = 'Show the raw log'): HTMLElement {
  const e = humanError(raw);
  return h('div', { class: 'err-block' }, h('p', { class: 'err-line' }, e.line),
    e.raw ? h('details', { class: 'gate-output' }, h('summary', null, summary), h('pre', null, e.raw)) : null);
}

// ---- what needs the person now (the navigation's badges) ----

/** The merges of one bead, oldest first, numbered by attempt. */
export function mergeAttempts(mq: MergeEntry[]): Map<string, MergeEntry[]> {
  const by = new Map<string, MergeEntry[]>();
  for (const m of [...mq].sort((a, b) => a.created_at.localeCompare(b.created_at))) {
    const k = m.source_bead_id || m.id;
    by.set(k, [...(by.get(k) ?? []), m]);
  }
  return by;
}

export function needsAction(s: TownState): { openEsc: number; failedMr: number; unreadMail: number } {
  const openEsc = s.escalations.filter((e) => !e.acknowledged).length;
  // A failed merge needs the person only when nothing else will happen by itself: its bead's
  // latest attempt failed and the bead gave up (failed), not while it is reworked or retried.
  let failedMr = 0;
  for (const [beadId, list] of mergeAttempts(s.mergeQueue)) {
    const last = list[list.length - 1];
    const b = s.bead(beadId);
    if (last.status === 'failed' && (!b || b.status === 'failed')) failedMr++;
  }
  const unreadMail = s.mail.filter((m) => !m.read_at && m.to_agent_id === 'overseer').length;
  return { openEsc, failedMr, unreadMail };
}

// ---- the activity feed: an entity's events as one row ----

export interface FeedGroup { key: string; events: BeadEvent[]; rigId: string | null; agentIds: string[]; kind: string }

export function eventKind(e: BeadEvent): string {
  const t = e.event_type;
  if (/^review_/.test(t) || /merge/.test(t)) return 'merge';
  if (/^mail_/.test(t)) return 'mail';
  if (t === 'escalated' || /escalat/.test(t)) return 'escalation';
  if (/^agent_|dispatch|checkpoint|stalled|redispatch/.test(t)) return 'agent';
  return 'work';
}

/** Groups events by the bead they are about (a merge request's under its source bead), newest group first. */
export function groupFeed(events: BeadEvent[], s: TownState): FeedGroup[] {
  const groups = new Map<string, FeedGroup>();
  for (const e of events) {
    const mr = s.mergeQueue.find((m) => m.id === e.bead_id);
    const key = mr?.source_bead_id || (typeof e.metadata?.source_bead_id === 'string' ? e.metadata.source_bead_id : '') || e.bead_id;
    let g = groups.get(key);
    if (!g) { g = { key, events: [], rigId: e.rig_id, agentIds: [], kind: eventKind(e) }; groups.set(key, g); }
    else groups.delete(key); // re-insert: the group moves to the newest position
    groups.set(key, g);
    g.events.push(e);
    g.rigId ??= e.rig_id;
    if (e.agent_id && !g.agentIds.includes(e.agent_id)) g.agentIds.push(e.agent_id);
    g.kind = eventKind(e);
  }
  return [...groups.values()].reverse();
}

/** "toast (polecat)", but just "mayor" where the name is the role. */
export function agentLabel(a: Agent): string {
  return a.name === a.role ? a.name : `${a.name} (${a.role})`;
}

/** What an entity (bead, convoy, mail, escalation, agent) is called, for people. */
export function entityName(id: string, s: TownState): string | null {
  const b = s.bead(id);
  if (b) return b.title;
  const a = s.agent(id);
  if (a) return agentLabel(a);
  const c = s.convoys.find((x) => x.id === id);
  if (c) return `convoy “${c.title}”`;
  const m = s.mail.find((x) => x.id === id);
  if (m) return `mail “${m.subject}”`;
  const e = s.escalations.find((x) => x.id === id);
  if (e) return `escalation: ${e.message}`;
  return null;
}

export function feedRow(g: FeedGroup, s: TownState): HTMLElement {
  const last = g.events[g.events.length - 1];
  const bead = s.bead(g.key);
  const agent = s.agent(g.key);
  const title = entityName(g.key, s) ?? g.key;
  const who = g.agentIds.map((id) => s.agentName(id)).filter((n) => n !== agent?.name).join(', ');
  const rig = s.rig(g.rigId)?.name;
  const steps = g.events.length > 1 ? g.events.slice(0, -1).reverse().map((e) => h('li', null, h('button', { class: 'link event-link', 'data-focus-key': `event-${e.id}`, onclick: () => openDrawer({ kind: 'event', eventId: e.id }) }, describeEvent(e, s)), ' ', timeEl(e.created_at))) : [];
  return h('li', { class: `event feed-group ev-${last.event_type}`, 'data-entity': g.key },
    h('div', { class: 'feed-head' },
      bead && bead.rig_id ? h('button', { class: 'link feed-title', onclick: () => openDrawer({ kind: 'bead', rigId: bead.rig_id!, beadId: bead.id }) }, title) : h('strong', null, title),
      ' ', h('span', { class: 'muted small' }, [rig, who].filter(Boolean).join(' · '))),
    h('div', { class: 'feed-last' }, h('button', { class: 'link event-link', 'data-focus-key': `event-${last.id}`, onclick: () => openDrawer({ kind: 'event', eventId: last.id }) }, describeEvent(last, s)), ' ', timeEl(last.created_at)),
    steps.length ? h('details', { class: 'feed-steps' }, h('summary', { class: 'muted small' }, `${steps.length} earlier step${steps.length > 1 ? 's' : ''}`), h('ol', { class: 'plain' }, steps)) : null);
}
