// notebook_ext for JupyterLab 4 and Notebook 7: the jobs panel, the card's
// own renderer, and a word when a long job ends. Everything comes from the
// job ledger through the server extension; nothing here sends a message to
// a kernel except the user's own "Resume" (a new cell running %resume).
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { listIcon } from '@jupyterlab/ui-components';

import { ACTIVE, IJob, JobsClient, control } from './api';
import { CARD_RANK, NotebookLink, cardFactory, runInNewCell } from './card';
import { JobsPanel, PANEL_ID } from './panel';

const PLUGIN = 'notebook-ext:plugin';
const ASKED = 'notebook-ext:notification-permission-asked';

interface ISettings {
  notifications: boolean;
  notifyAfter: number;
}

async function resume(docs: IDocumentManager, path: string, name: string): Promise<void> {
  const panel = docs.openOrReveal(path) as NotebookPanel | undefined;
  if (!panel || !(panel as any).content) {
    throw new Error(`cannot open ${path}`);
  }
  await panel.context.ready;
  await panel.sessionContext.ready;
  await runInNewCell(panel, -1, `%resume ${name}`);
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN,
  description: 'Jobs panel, cards that stay true, and notifications for notebook_ext.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry, IDocumentManager],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    docs: IDocumentManager,
    registry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    // card.js asks for this: with it, cards send their buttons through the
    // server and no "hello" (each one a kernel message that flips its status)
    (window as any).notebookExt = { version: 1, control };

    rendermime.addFactory(cardFactory(null), CARD_RANK);
    const link = (panel: NotebookPanel) =>
      panel.content.rendermime.addFactory(cardFactory(new NotebookLink(panel)), CARD_RANK);
    tracker.forEach(link);
    tracker.widgetAdded.connect((_, panel) => link(panel));

    const settings: ISettings = { notifications: true, notifyAfter: 30 };
    if (registry) {
      void registry.load(PLUGIN).then(s => {
        const read = () => Object.assign(settings, s.composite as unknown as ISettings);
        read();
        s.changed.connect(read);
      });
    }

    const client = new JobsClient();
    const panel = new JobsPanel({ client, docs, resume: (path, name) => resume(docs, path, name) });
    panel.title.icon = listIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    app.commands.addCommand('notebook-ext:show-jobs', {
      label: 'Show the Jobs Panel (notebook_ext)',
      execute: () => app.shell.activateById(PANEL_ID)
    });
    palette?.addItem({ command: 'notebook-ext:show-jobs', category: 'notebook_ext' });

    const seen = new Map<string, string>();
    const notify = (job: IJob) => {
      if (!settings.notifications || !job.started || !job.ended || job.ended - job.started < settings.notifyAfter) {
        return;
      }
      const took = Math.round(job.ended - job.started);
      const message = `${job.name} ${job.state} after ${took} s` + (job.notebook ? ` (${job.notebook})` : '');
      const actions = job.notebook ? [{ label: 'Go to cell', callback: () => void panel.goTo(job) }] : [];
      if (job.state === 'done') {
        Notification.success(message, { autoClose: 15000, actions });
      } else {
        Notification.error(`${message}: ${(job.error || '').split('\n')[0]}`, { autoClose: false, actions });
      }
      const Browser = (window as any).Notification;
      if (document.hidden && Browser && Browser.permission === 'granted') {
        const n = new Browser(`notebook_ext: ${job.name} ${job.state}`, { body: message, tag: job.id });
        n.onclick = () => {
          window.focus();
          void panel.goTo(job);
        };
      }
    };
    const askOnce = () => {
      const Browser = (window as any).Notification;
      if (settings.notifications && Browser && Browser.permission === 'default' && !localStorage.getItem(ASKED)) {
        localStorage.setItem(ASKED, '1');
        void Browser.requestPermission();
      }
    };
    const watch = () => {
      const listing = client.listing;
      if (!listing) {
        return;
      }
      const now = Date.now() / 1000 + client.offset;
      for (const job of listing.jobs) {
        const before = seen.get(job.id);
        if (before !== undefined && ACTIVE.includes(before) && (job.state === 'done' || job.state === 'failed')) {
          notify(job);
        }
        if (job.live && job.started && now - job.started >= settings.notifyAfter) {
          askOnce(); // a long job is running: its end will be worth a word
        }
        seen.set(job.id, job.state);
      }
    };

    // A long poll: the server answers when a job changes, so a change reaches
    // the panel within about half a second of reaching the ledger.
    const tick = async () => {
      let wait = 0; // the server paces the answers
      try {
        if (await client.poll()) {
          watch();
          if (panel.isVisible) {
            panel.draw();
          }
        }
      } catch (err) {
        wait = 5000; // a server without the extension, or restarting
      }
      window.setTimeout(() => void tick(), wait);
    };
    // elapsed times move on between changes
    window.setInterval(() => panel.isVisible && panel.draw(), 1000);
    void app.restored.then(() => void tick());
  }
};

export default plugin;
