// The card's own MIME type: drawn from the job's last known state when its
// widget cannot be (a reopened notebook, a restarted kernel, no kernel at
// all), and the live widget view mounted over it when its model exists.
// No message of ours reaches a kernel: state comes from the ledger, through
// the server extension.
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Panel, Widget } from '@lumino/widgets';

import { ACTIVE, IJob, control, fetchJob } from './api';
// The card's drawing code, shared with the anywidget card (one source).
// @ts-ignore: plain JavaScript, no type declarations
import { drawCard, drawDashboard } from '../../notebook_ext/ui/card.js';

export const CARD_MIME = 'application/vnd.notebook-ext.card+json';
export const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
/** Before the widget view (rank -10), so the card's own renderer is chosen. */
export const CARD_RANK = -20;

/** What the kernel saves with each card and dashboard (ui/_widgets.py). */
export interface ISaved {
  version: number;
  kind: 'card' | 'dashboard';
  uid?: string;
  name?: string;
  snap?: any;
  view?: any;
  note?: string;
}

/** A notebook, its kernel and the cards drawn in it. */
export class NotebookLink {
  readonly renderers = new Set<CardRenderer>();
  /** widget models of kernels that have gone: never mounted again */
  readonly deadModels = new Set<string>();

  /** the widget renderer factory before the notebook's widget manager is bound to it */
  private readonly unbound: IRenderMime.IRendererFactory | undefined;
  private bound: Promise<boolean> | null = null;

  constructor(readonly panel: NotebookPanel) {
    this.unbound = panel.content.rendermime.getFactory(WIDGET_MIME);
    const ctx = panel.sessionContext;
    ctx.statusChanged.connect((_, status) => {
      if (status === 'restarting' || status === 'autorestarting') {
        this.gone('kernel restarted');
      } else if (status === 'dead') {
        this.gone('kernel died');
      }
    });
    ctx.kernelChanged.connect((_, change) => {
      if (change.oldValue) {
        this.gone(change.newValue ? 'kernel changed' : 'kernel shut down');
      }
    });
  }

  /**
   * Resolves true once the notebook's widget manager draws widget views (the
   * widgets extension binds it when the kernel connects; a view made before
   * would wait for ever), false when there is no widget manager or no kernel.
   */
  widgetsReady(): Promise<boolean> {
    if (!this.bound) {
      this.bound = new Promise<boolean>(resolve => {
        const check = () => {
          const factory = this.panel.content.rendermime.getFactory(WIDGET_MIME);
          const ctx = this.panel.sessionContext;
          if (!this.unbound || !factory || this.panel.isDisposed) {
            resolve(false);
          } else if (factory !== this.unbound) {
            resolve(true);
          } else if (ctx.isReady && !ctx.session?.kernel) {
            this.bound = null; // no kernel now: ask again when a card is drawn later
            resolve(false);
          } else {
            window.setTimeout(check, 100);
          }
        };
        check();
      });
    }
    return this.bound;
  }

  private gone(why: string): void {
    for (const r of this.renderers) {
      r.seenModels.forEach(m => this.deadModels.add(m));
    }
    for (const r of this.renderers) {
      void r.kernelGone(why);
    }
  }

  /** Insert a cell below ``near``'s cell running ``code``, and run it. */
  runBelow(near: Widget, code: string): Promise<void> {
    const index = this.panel.content.widgets.findIndex(c => c.node.contains(near.node));
    return runInNewCell(this.panel, index, code);
  }
}

/** Insert a code cell below cell ``index`` (-1: at the end) of ``panel`` running ``code``, and run it. */
export async function runInNewCell(panel: NotebookPanel, index: number, code: string): Promise<void> {
  const nb = panel.content;
  nb.activeCellIndex = index >= 0 ? index : nb.widgets.length - 1;
  NotebookActions.insertBelow(nb);
  nb.activeCell!.model.sharedModel.setSource(code);
  await NotebookActions.run(nb, panel.sessionContext);
}

function isActive(state: string | undefined): boolean {
  return ACTIVE.includes(state || '');
}

/** The saved snapshot brought up to what the ledger says. */
function merged(snap: any, rec: IJob | null, now: number): any {
  if (!rec) {
    return snap;
  }
  const p = rec.progress;
  // the ledger's snapshot is written once a second: the card's own may be newer
  const done = Math.max(p.done ?? 0, snap.done ?? 0) || (p.done ?? snap.done);
  const total = p.total ?? snap.total;
  return {
    ...snap,
    state: rec.state,
    done,
    total,
    fraction: total ? Math.min(1, (done || 0) / total) : snap.fraction,
    rate: p.rate,
    eta: rec.live ? p.eta : null,
    error: rec.error ?? snap.error,
    elapsed: rec.started ? (rec.ended ?? now) - rec.started : snap.elapsed,
    cancel_requested: false,
    stop_requested: false
  };
}

export class CardRenderer extends Panel implements IRenderMime.IRenderer {
  /** widget model ids this renderer has shown */
  readonly seenModels = new Set<string>();
  private model: IRenderMime.IMimeModel | null = null;
  private saved: ISaved | null = null;
  private modelId = '';
  private mode: 'static' | 'live' = 'static';
  private readonly staticView = new Widget();
  private live: IRenderMime.IRenderer | null = null;
  private observer: MutationObserver | null = null;
  private liveModel: any = null;
  private record: IJob | null = null;
  private note = '';
  /** its widget model does not exist (any more) */
  private missing = false;
  private timer = 0;
  private openDetails = {};

  constructor(
    readonly options: IRenderMime.IRendererOptions,
    readonly link: NotebookLink | null
  ) {
    super();
    this.addClass('nbx-card-output');
    this.staticView.addClass('nbx-saved-view');
    this.addWidget(this.staticView);
    link?.renderers.add(this);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const saved = model.data[CARD_MIME] as unknown as ISaved;
    const widget = model.data[WIDGET_MIME] as any;
    const modelId: string = (widget && widget.model_id) || '';
    const same = this.saved && saved.uid === this.saved.uid && modelId === this.modelId;
    this.model = model;
    this.saved = saved;
    if (same && this.mode === 'live') {
      return; // the kernel saved a newer state: the live view shows it already
    }
    this.modelId = modelId;
    this.unmount();
    this.missing = !modelId || !this.link || !model.trusted || this.link.deadModels.has(modelId);
    this.note = saved.note || '';
    this.drawStatic();
    const link = this.link;
    if (modelId && link && model.trusted && !link.deadModels.has(modelId)) {
      this.seenModels.add(modelId);
      void link.widgetsReady().then(ready => {
        if (this.model !== model || this.isDisposed) {
          return;
        }
        if (ready) {
          this.mount(link, model);
        } else {
          this.missing = true;
          this.drawStatic();
          void this.refresh();
        }
      });
    }
    if (this.missing) {
      void this.refresh();
    }
  }

  /** The live widget view, over the static card once (if ever) its model exists. */
  private mount(link: NotebookLink, model: IRenderMime.IMimeModel): void {
    const live = link.panel.content.rendermime.createRenderer(WIDGET_MIME);
    this.live = live;
    live.hide();
    this.addWidget(live);
    const check = () => {
      if (this.live !== live) {
        return;
      }
      const el = live.node.querySelector('.nbx-card, .nbx-dashboard');
      if (el) {
        this.goLive(el as HTMLElement);
      } else if (/^Error (displaying|creating) widget/.test(live.node.textContent || '')) {
        this.unmount(); // no such model (a reopened notebook, a new kernel): the static card stays
        this.missing = true;
        this.drawStatic();
        void this.refresh();
      }
    };
    this.observer = new MutationObserver(check);
    this.observer.observe(live.node, { childList: true, subtree: true, characterData: true });
    void live.renderModel(model).then(check, () => {
      if (this.live === live) {
        this.unmount();
      }
    });
  }

  private goLive(el: HTMLElement): void {
    this.mode = 'live';
    this.observer?.disconnect();
    this.observer = null;
    this.staticView.hide();
    this.staticView.node.replaceChildren(); // one card on the page, the live one
    this.live!.show();
    window.clearInterval(this.timer);
    // card.js leaves its model on its element: the latest state, should the kernel go
    const host = el.parentElement as any;
    this.liveModel = host && host.__nbx ? host.__nbx : null;
  }

  private unmount(): void {
    this.observer?.disconnect();
    this.observer = null;
    if (this.live) {
      this.live.dispose();
      this.live = null;
    }
    this.liveModel = null;
    this.mode = 'static';
    this.staticView.show();
  }

  /** The kernel that drew the live card has gone: the card says what became of the job. */
  async kernelGone(why: string): Promise<void> {
    if (!this.saved) {
      return;
    }
    const latest = this.liveModel?.get(this.saved.kind === 'dashboard' ? 'view' : 'snap');
    if (latest) {
      this.saved = { ...this.saved, [this.saved.kind === 'dashboard' ? 'view' : 'snap']: latest };
    }
    this.unmount();
    window.clearInterval(this.timer);
    const before = this.saved.snap?.state;
    this.record = null;
    if (this.saved.uid) {
      this.record = await fetchJob(this.saved.uid).catch(() => null);
    }
    const state = this.record?.state ?? before;
    this.note = why;
    if (this.saved.snap && (isActive(state) || this.record?.state === 'interrupted')) {
      this.saved.snap = { ...merged(this.saved.snap, this.record, Date.now() / 1000), state: 'interrupted' };
    } else if (this.saved.snap) {
      this.saved.snap = merged(this.saved.snap, this.record, Date.now() / 1000);
    }
    this.drawStatic();
    this.save();
  }

  /** Keep the truth in the notebook file too (it is saved with the next save). */
  private save(): void {
    const model = this.model as any;
    if (!model || typeof model.setData !== 'function' || !this.saved) {
      return;
    }
    const data = { ...model.data, [CARD_MIME]: { ...this.saved, note: this.note } };
    model.setData({ data });
  }

  /** The ledger's word on a job whose card is not live; followed while the job runs elsewhere. */
  private async refresh(): Promise<void> {
    const uid = this.saved?.uid;
    if (!uid || this.isDisposed) {
      return;
    }
    let rec = await fetchJob(uid).catch(() => null);
    if (this.mode !== 'static' || this.saved?.uid !== uid) {
      return;
    }
    if (rec && rec.live && this.note) {
      // its kernel went (restarted, shut down): the ledger may not know yet
      rec = { ...rec, live: false, state: 'interrupted' };
    }
    this.record = rec;
    if (rec && this.saved.snap) {
      this.saved = { ...this.saved, snap: merged(this.saved.snap, rec, Date.now() / 1000) };
    } else if (!rec && this.saved.snap && isActive(this.saved.snap.state)) {
      this.saved = { ...this.saved, snap: { ...this.saved.snap, state: 'interrupted' } };
    }
    this.drawStatic();
    window.clearInterval(this.timer);
    if (rec && rec.live) {
      this.timer = window.setInterval(() => void this.refresh(), 1500);
    }
  }

  private drawStatic(): void {
    const saved = this.saved;
    if (!saved) {
      return;
    }
    const node = this.staticView.node;
    const root = document.createElement('div');
    const live = !!(this.record && this.record.live);
    if (saved.kind === 'dashboard') {
      root.className = 'nbx-saved-dashboard';
      drawDashboard(root, saved.view || {}, { send: () => undefined });
      root.querySelectorAll('button, select').forEach(b => ((b as HTMLButtonElement).disabled = true));
    } else {
      root.className = 'nbx-saved-card';
      const snap = saved.snap || { name: saved.name, state: 'unknown' };
      const send = (action: string) => {
        if (saved.uid && (action === 'cancel' || action === 'stop')) {
          void control(saved.uid, action, `${action === 'cancel' ? 'cancelled' : 'stopped'} from its card`).then(() => this.refresh(), e => this.say(String(e.message || e)));
        }
      };
      drawCard(root, snap, send, this.openDetails, null);
      root.querySelectorAll('.nbx-retry').forEach(b => b.remove());
      if (!live) {
        root.querySelectorAll('.nbx-cancel, .nbx-stop').forEach(b => b.remove());
      }
      const badge = root.querySelector('.nbx-state');
      if (badge && this.note && snap.state === 'interrupted') {
        badge.textContent = `interrupted (${this.note})`;
      }
      const buttons = root.querySelector('.nbx-buttons');
      if (buttons && this.record?.resumable && !live && this.link) {
        const b = document.createElement('button');
        b.className = 'nbx-resume';
        b.textContent = 'Resume';
        b.title = `run %resume ${snap.name} in a new cell below`;
        b.onclick = () => void this.link!.runBelow(this, `%resume ${snap.name}`);
        buttons.append(b);
      }
    }
    const where = live ? 'running (from the job ledger)' : this.note && !root.querySelector('.nbx-state')?.textContent?.includes(this.note) ? this.note : '';
    const earlier = this.missing && !live && !this.note;
    const notes = [where, earlier ? 'from an earlier session' : ''].filter(Boolean);
    if (notes.length) {
      const n = document.createElement('div');
      n.className = 'nbx-earlier';
      n.textContent = notes.join(' · ');
      root.append(n);
    }
    node.replaceChildren(root);
  }

  private say(message: string): void {
    const n = document.createElement('div');
    n.className = 'nbx-error';
    n.textContent = message;
    this.staticView.node.firstElementChild?.append(n);
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this.timer);
    this.observer?.disconnect();
    this.link?.renderers.delete(this);
    super.dispose();
  }
}

/** The factory, for one notebook (``link``) or for any other output area (null: no live view). */
export function cardFactory(link: NotebookLink | null): IRenderMime.IRendererFactory {
  return {
    safe: true, // drawn as text from JSON; the live view only for trusted outputs
    mimeTypes: [CARD_MIME],
    defaultRank: CARD_RANK,
    createRenderer: options => new CardRenderer(options, link)
  };
}
