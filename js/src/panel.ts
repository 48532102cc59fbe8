// The jobs panel: every job of every kernel (the ledger, through the server
// extension), grouped by notebook; cancel, stop and keep, go to the cell
// that started a job, resume one that can go on.
import { Notification } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { ACTIVE, IJob, JobsClient, control } from './api';
import { CARD_MIME } from './card';

export const PANEL_ID = 'notebook-ext-jobs';
/** kinds of job that can stop early and keep what they made (a model, finished items) */
const STOPPABLE = ['train', 'preprocess'];

function duration(s: number | null | undefined): string {
  if (s === null || s === undefined || !isFinite(s)) {
    return '';
  }
  s = Math.max(0, s);
  if (s < 60) {
    return `${s < 10 ? s.toFixed(1) : Math.floor(s)}s`;
  }
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = Math.floor(s % 60);
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

function el(tag: string, cls = '', text = ''): HTMLElement {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text) {
    e.textContent = text;
  }
  return e;
}

function button(cls: string, text: string, onclick: () => void, title = ''): HTMLButtonElement {
  const b = el('button', `jp-mod-styled nbx-panel-button ${cls}`, text) as HTMLButtonElement;
  b.onclick = e => {
    e.stopPropagation();
    onclick();
  };
  if (title) {
    b.title = title;
  }
  return b;
}

/** Open ``path`` and bring the cell showing job ``uid``'s card into view; false when none does. */
export async function goToCell(docs: IDocumentManager, path: string, uid: string): Promise<boolean> {
  const panel = docs.openOrReveal(path) as NotebookPanel | undefined;
  if (!panel || !(panel as any).content) {
    return false;
  }
  await panel.context.ready;
  await panel.revealed;
  const nb = panel.content;
  const index = nb.widgets.findIndex(cell => {
    const outputs = (cell.model as any).outputs;
    if (!outputs) {
      return false;
    }
    for (let i = 0; i < outputs.length; i++) {
      const saved = outputs.get(i).data[CARD_MIME] as any;
      if (saved && saved.uid === uid) {
        return true;
      }
    }
    return false;
  });
  if (index < 0) {
    return false;
  }
  nb.activeCellIndex = index;
  await nb.scrollToItem(index, 'center');
  const node = nb.widgets[index].node;
  node.classList.add('nbx-flash');
  window.setTimeout(() => node.classList.remove('nbx-flash'), 1500);
  return true;
}

interface IRow {
  el: HTMLElement;
  /** what the row offers (state, buttons): it is made again when that changes */
  shape: string;
  facts: HTMLElement;
  fill: HTMLElement | null;
}

export interface IPanelOptions {
  client: JobsClient;
  docs: IDocumentManager;
  /** run ``%resume NAME`` in ``path``'s kernel */
  resume: (path: string, name: string) => Promise<void>;
}

export class JobsPanel extends Widget {
  private readonly list = el('div', 'nbx-panel-list');
  private readonly filterText = el('input', 'jp-mod-styled nbx-panel-filter') as HTMLInputElement;
  private readonly filterState = el('select', 'jp-mod-styled nbx-panel-state') as HTMLSelectElement;
  private readonly status = el('div', 'nbx-panel-status');
  private rows = new Map<string, IRow>();

  constructor(private readonly options: IPanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('nbx-jobs-panel');
    this.title.caption = 'Jobs of every kernel (notebook_ext)';
    this.filterText.placeholder = 'Filter by name or notebook';
    this.filterText.oninput = () => this.draw();
    for (const s of ['all', 'active', 'ended', 'failed', 'resumable']) {
      const o = el('option', '', s) as HTMLOptionElement;
      o.value = s;
      this.filterState.append(o);
    }
    this.filterState.onchange = () => this.draw();
    const bar = el('div', 'nbx-panel-bar');
    bar.append(this.filterText, this.filterState);
    this.node.append(el('h2', 'nbx-panel-title', 'Jobs'), bar, this.status, this.list);
  }

  protected onAfterShow(): void {
    this.draw(); // at once, from the listing the page keeps
  }

  private shown(job: IJob): boolean {
    const f = this.filterText.value.trim().toLowerCase();
    if (f && !`${job.name} ${job.notebook || ''}`.toLowerCase().includes(f)) {
      return false;
    }
    switch (this.filterState.value) {
      case 'active':
        return ACTIVE.includes(job.state);
      case 'ended':
        return !ACTIVE.includes(job.state);
      case 'failed':
        return ['failed', 'timed_out', 'interrupted'].includes(job.state);
      case 'resumable':
        return job.resumable && !job.live;
      default:
        return true;
    }
  }

  /** Draw the client's latest listing. */
  draw(): void {
    const listing = this.options.client.listing;
    if (!listing) {
      return;
    }
    const now = Date.now() / 1000 + this.options.client.offset;
    const jobs = listing.jobs.filter(j => this.shown(j));
    const live = listing.jobs.filter(j => j.live).length;
    this.status.textContent = `${listing.jobs.length} jobs, ${live} running` + (listing.ledger ? '' : ' (history off)');
    const groups = new Map<string, IJob[]>();
    for (const job of jobs) {
      const key = job.notebook || '';
      if (!groups.has(key)) {
        groups.set(key, []);
      }
      groups.get(key)!.push(job);
    }
    const keys = [...groups.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a.localeCompare(b)));
    const rows = new Map<string, IRow>();
    const out: HTMLElement[] = [];
    for (const key of keys) {
      const group = el('section', 'nbx-panel-group');
      group.dataset.notebook = key;
      const head = el('div', 'nbx-panel-notebook', key || 'other processes (scripts, terminals)');
      if (key) {
        head.title = `open ${key}`;
        head.onclick = () => this.options.docs.openOrReveal(key);
      }
      group.append(head);
      for (const job of groups.get(key)!) {
        group.append(this.row(job, now, rows));
      }
      out.push(group);
    }
    if (!out.length) {
      out.push(el('div', 'nbx-panel-empty', listing.jobs.length ? 'No job matches the filter.' : 'No jobs yet.'));
    }
    this.list.replaceChildren(...out);
    this.rows = rows;
  }

  /** A job's row: made again when what it offers changes, else its numbers updated in place. */
  private row(job: IJob, now: number, rows: Map<string, IRow>): HTMLElement {
    const p = job.progress;
    const frac = p.total ? Math.min(1, (p.done || 0) / p.total) : null;
    const facts: string[] = [];
    if (p.total) {
      facts.push(`${p.done ?? 0}/${p.total} (${Math.round(100 * (frac || 0))}%)`);
    } else if (p.done) {
      facts.push(`${p.done} done`);
    }
    if (job.started) {
      facts.push(`elapsed ${duration((job.ended ?? now) - job.started)}`);
    }
    if (job.live && p.eta !== null && p.eta !== undefined) {
      facts.push(`ETA ${duration(p.eta)}`);
    }
    if (job.executor) {
      facts.push(job.executor);
    }
    const width = `${frac === null ? (job.state === 'done' ? 100 : 0) : (frac * 100).toFixed(1)}%`;
    const shape = [job.state, job.live, job.resumable, job.notebook, job.error, job.kind, !!(job.live || p.total)].join('|');
    let r = this.rows.get(job.id);
    if (!r || r.shape !== shape) {
      r = this.makeRow(job, shape);
    }
    if (r.facts.textContent !== facts.join(' · ')) {
      r.facts.textContent = facts.join(' · ');
    }
    if (r.fill && r.fill.style.width !== width) {
      r.fill.style.width = width;
    }
    rows.set(job.id, r);
    return r.el;
  }

  private makeRow(job: IJob, shape: string): IRow {
    const row = el('div', `nbx-panel-job nbx-panel-${job.state}`);
    row.dataset.name = job.name;
    row.dataset.id = job.id;
    row.dataset.state = job.state;
    const head = el('div', 'nbx-panel-head');
    head.append(el('span', 'nbx-panel-name', job.name), el('span', `nbx-state nbx-state-${job.state}`, job.state));
    row.append(head);
    let fill: HTMLElement | null = null;
    if (job.live || job.progress.total) {
      const bar = el('div', 'nbx-bar nbx-bar-small');
      fill = el('div', 'nbx-bar-fill');
      fill.style.background = `var(--nbx-${job.state}, #555)`;
      bar.append(fill);
      row.append(bar);
    }
    const facts = el('div', 'nbx-panel-facts');
    row.append(facts);
    if (job.error && job.state !== 'done') {
      row.append(el('div', 'nbx-panel-error', job.error.split('\n')[0]));
    }
    const buttons = el('div', 'nbx-panel-buttons');
    if (job.live) {
      buttons.append(button('nbx-panel-cancel', 'Cancel', () => this.act(job, 'cancel')));
      if (STOPPABLE.includes(job.kind || '')) {
        buttons.append(button('nbx-panel-stop', 'Stop and keep', () => this.act(job, 'stop'),
          'stop it and keep what it made so far'));
      }
    }
    if (job.notebook) {
      buttons.append(button('nbx-panel-goto', 'Go to cell', () => void this.goTo(job),
        `open ${job.notebook} at the cell that started ${job.name}`));
    }
    if (job.resumable && !job.live && job.notebook) {
      buttons.append(button('nbx-panel-resume', 'Resume', () => void this.options.resume(job.notebook!, job.name),
        `run %resume ${job.name} in ${job.notebook}'s kernel`));
    }
    row.append(buttons);
    return { el: row, shape, facts, fill };
  }

  private act(job: IJob, action: 'cancel' | 'stop'): void {
    control(job.id, action, `${action === 'cancel' ? 'cancelled' : 'stopped'} from the jobs panel`).then(
      message => Notification.info(`${job.name}: ${message}`, { autoClose: 3000 }),
      err => Notification.error(`${job.name}: ${err.message || err}`, { autoClose: 5000 })
    );
  }

  async goTo(job: IJob): Promise<void> {
    if (!job.notebook || !(await goToCell(this.options.docs, job.notebook, job.id))) {
      Notification.warning(`No cell of ${job.notebook || 'an open notebook'} shows ${job.name}'s card.`, {
        autoClose: 4000
      });
    }
  }
}
