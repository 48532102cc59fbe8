// The server extension's API (notebook_ext/server): the job ledger over HTTP.
// ServerConnection adds the token and the XSRF header Jupyter requires.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One job as the ledger keeps it (JobRecord.as_json on the server). */
export interface IJob {
  id: string;
  name: string;
  kind: string | null;
  state: string;
  live: boolean;
  executor: string | null;
  session: string;
  created: number | null;
  started: number | null;
  ended: number | null;
  error: string | null;
  parent: string | null;
  progress: { done: number | null; total: number | null; rate: number | null; eta: number | null; at: number | null };
  metrics: { [k: string]: number };
  owner: { pid: number | null; host: string | null; kernel: string | null; notebook: string | null };
  resumable: boolean;
  notebook: string | null;
  kernel_here: boolean;
  traceback?: string | null;
}

export interface IListing {
  schema: number;
  now: number;
  ledger: string | null;
  jobs: IJob[];
}

export const ACTIVE = ['pending', 'queued', 'running'];

const settings = ServerConnection.makeSettings();

function url(...parts: string[]): string {
  return URLExt.join(settings.baseUrl, 'notebook-ext/api/jobs', ...parts.map(encodeURIComponent));
}

/**
 * The ledger's jobs, polled; one request at a time, a 304 when nothing changed
 * (`changed` false then). `offset` is the server's clock minus ours, in seconds.
 */
export class JobsClient {
  listing: IListing | null = null;
  offset = 0;
  private etag = '';

  /**
   * The listing, once it differs from the one we have: the server holds the
   * request until a job changes (or ``wait`` seconds pass: then false).
   */
  async poll(wait = 25): Promise<boolean> {
    const headers: { [k: string]: string } = {};
    if (this.etag) {
      headers['If-None-Match'] = this.etag;
    }
    const where = this.etag ? `${url()}?wait=${wait}` : url();
    const r = await ServerConnection.makeRequest(where, { headers, cache: 'no-store' }, settings);
    if (r.status === 304 && this.listing) {
      return false;
    }
    if (!r.ok) {
      throw new Error(`${r.status} ${r.statusText} from ${url()}`);
    }
    this.listing = (await r.json()) as IListing;
    this.offset = this.listing.now - Date.now() / 1000;
    this.etag = r.headers.get('ETag') || '';
    return true;
  }
}

/** One job with its traceback; null when the ledger has none with that id. */
export async function fetchJob(id: string): Promise<IJob | null> {
  const r = await ServerConnection.makeRequest(url(id), { cache: 'no-store' }, settings);
  if (r.status === 404) {
    return null;
  }
  if (!r.ok) {
    throw new Error(`${r.status} ${r.statusText}`);
  }
  return (await r.json()) as IJob;
}

/** Ask the job's kernel to cancel it, or to stop it and keep what it made. */
export async function control(id: string, action: 'cancel' | 'stop', reason?: string): Promise<string> {
  const body = JSON.stringify(reason ? { reason } : {});
  const r = await ServerConnection.makeRequest(url(id, action), { method: 'POST', body }, settings);
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) {
    throw new Error(answer.message || `${r.status} ${r.statusText}`);
  }
  return answer.message || `${action} requested`;
}
