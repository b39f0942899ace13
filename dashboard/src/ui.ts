// Pieces shared by several views: agent and bead cards, role colours and statuses, and the
// words for each event type in the activity feed and timelines.

import type { Agent, Bead, BeadEvent } from './api';
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
    'aria-label': `${a.role} ${a.name}, ${st}${a.hook_bead_id ? `, working on ${a.hook_bead_id}` : ''}`,
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
    'aria-label': `${b.id}: ${b.title}, ${b.status.replace('_', ' ')}, ${b.priority} priority`,
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
  const what = bead ? `${e.bead_id} “${bead.title}”`
    : mr ? `merge request ${e.bead_id}${source ? ` for “${source.title}”` : ` for ${mr.source_bead_id}`}` : e.bead_id;
  const arrow = e.old_value && e.new_value ? `${e.old_value} → ${e.new_value}` : e.new_value ?? '';
  switch (e.event_type) {
    case 'created': return `${what} created`;
    case 'status_changed': return `${what}: ${arrow}`;
    case 'hooked': return `${what} hooked to ${who ?? 'an agent'}`;
    case 'unhooked': return `${what} unhooked from ${who ?? 'its agent'}`;
    case 'assigned': return `${what} assigned to ${who ?? e.new_value ?? '—'}`;
    case 'agent_registered': return `agent ${String(e.metadata?.name ?? who ?? e.bead_id)} joined as ${e.new_value ?? ''}`;
    case 'agent_spawned': return `${who ?? 'an agent'} started on ${what}`;
    case 'agent_exited': return `${who ?? 'an agent'} exited${e.new_value ? ` (${e.new_value})` : ''}`;
    case 'dispatch_failed': return `starting ${who ?? 'an agent'} failed${e.new_value ? `: ${e.new_value}` : ''}`;
    case 'review_submitted': return `${what} submitted for merge`;
    case 'review_completed': return mr ? `${what}: ${e.new_value ?? 'done'}` : `merge of ${what}: ${e.new_value ?? 'done'}`;
    case 'closed': return `${what} closed`;
    case 'reopened': return `${what} reopened`;
    case 'mail_sent': return `mail: ${bead?.title ?? e.bead_id}`;
    case 'mail_read': return `mail read by ${who ?? 'an agent'}`;
    case 'escalated': return `escalation: ${e.new_value ?? what}`;
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
