// One acquisition's upload page: a drop zone for files and folders, pickers, the refused names
// with their reasons, and the queue with per-file and overall progress, retry and cancel.

import { html, nothing, type TemplateResult } from "lit-html";
import type { Api } from "../api/client";
import type { Acquisition } from "../api/types";
import { errorLine } from "../ui/dialog";
import { filesFromDrop, filesFromInput } from "./files";
import { describeError, formatBytes, formatRate, progressBar, statusBadge } from "./format";
import { FILE_STATES, UploadQueue, type FileState, type QueueItem, type SourceFile } from "./queue";

/** Rows drawn at most (10,000 files stay fast: the counts say how many there are). */
const MAX_ROWS = 300;
/** The page is drawn at most this often while files move. */
const DRAW_INTERVAL_MS = 150;

const STATE_LABELS: Record<FileState, string> = {
  checking: "checking",
  refused: "refused",
  ready: "ready",
  waiting: "waiting",
  uploading: "uploading",
  complete: "complete",
  failed: "failed",
  cancelled: "cancelled",
  skipped: "skipped",
};

interface ServerFiles {
  images: number;
  metadata: number;
  complete: number;
}

export class AcquisitionPage {
  acquisition: Acquisition | null = null;
  readonly queue: UploadQueue;
  private error = "";
  private server: ServerFiles | null = null;
  private filter: FileState | "all" = "all";
  private dragging = false;
  private reading = false;
  private notes: string[] = [];
  private drawTimer = 0;
  private wasActive = false;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    readonly acquisitionId: string,
    private readonly changed: () => void,
    private readonly listHref: string,
  ) {
    this.queue = new UploadQueue(
      {
        check: (names) => api.checkUploadNames(experimentId, acquisitionId, names),
        register: (names) => api.registerUploads(experimentId, acquisitionId, names),
        send: (name, file, onProgress, signal) =>
          api.uploadMicroscopeFile(experimentId, acquisitionId, file, name, onProgress, signal),
      },
      describeError,
    );
    this.queue.onChange = () => this.queueChanged();
    void this.load();
  }

  /** Reload the acquisition and what the server holds of it. */
  async load(): Promise<void> {
    try {
      const [acquisition, images, metadata, complete] = await Promise.all([
        this.api.acquisition(this.experimentId, this.acquisitionId),
        this.api.microscopeFiles(this.experimentId, this.acquisitionId, "images"),
        this.api.microscopeFiles(this.experimentId, this.acquisitionId, "metadata"),
        this.api.uploadCount(this.experimentId, this.acquisitionId),
      ]);
      this.acquisition = acquisition;
      this.server = { images: images.length, metadata: metadata.length, complete };
      this.error = "";
    } catch (err) {
      this.error = describeError(err);
    }
    this.changed();
  }

  dispose(): void {
    window.clearTimeout(this.drawTimer);
    this.queue.onChange = () => {};
    this.queue.cancel();
  }

  private queueChanged(): void {
    const active = this.queue.active;
    if (this.wasActive && !active) void this.load(); // a round ended: the server's counts
    this.wasActive = active;
    if (this.drawTimer) return;
    this.drawTimer = window.setTimeout(() => {
      this.drawTimer = 0;
      this.changed();
    }, DRAW_INTERVAL_MS);
  }

  private async add(found: Promise<{ files: SourceFile[]; unreadable: string[] }>): Promise<void> {
    this.reading = true;
    this.notes = [];
    this.changed();
    let files: SourceFile[] = [];
    let unreadable: string[] = [];
    try {
      ({ files, unreadable } = await found);
    } catch (err) {
      this.error = describeError(err);
    }
    this.reading = false;
    const before = this.queue.duplicates;
    const added = this.queue.add(files);
    const duplicates = this.queue.duplicates - before;
    if (files.length === 0) this.notes.push("No files found in what was dropped or picked.");
    if (duplicates) {
      this.notes.push(`${duplicates} file(s) with a name already in the list were left out.`);
    }
    if (unreadable.length) {
      this.notes.push(`${unreadable.length} item(s) could not be read, e.g. ${unreadable[0]}.`);
    }
    await added;
  }

  private drop(event: DragEvent): void {
    event.preventDefault();
    this.dragging = false;
    // the entries must be taken now: the DataTransfer is emptied once the handler returns
    if (event.dataTransfer) void this.add(filesFromDrop(event.dataTransfer));
  }

  private picked(event: Event): void {
    const input = event.target as HTMLInputElement;
    const files = filesFromInput(input);
    input.value = ""; // the same folder can be picked again
    void this.add(Promise.resolve({ files, unreadable: [] }));
  }

  template(): TemplateResult {
    const a = this.acquisition;
    const q = this.queue;
    const counts = q.counts();
    const { loaded, total } = q.progress();
    const failed = counts.failed + counts.cancelled;
    return html`<section class="acquisition-page" data-testid="acquisition-page" data-id=${this.acquisitionId}>
      <nav class="crumbs">
        <a href=${this.listHref} data-link data-testid="back-to-plates">Plates</a> ›
        <span>${a?.plate_name ?? "…"}</span> ›
        <b data-testid="acquisition-name">${a?.name ?? "…"}</b>
      </nav>
      <header class="acquisition-head">
        <h1>Acquisition ${a?.name ?? ""}</h1>
        ${a ? statusBadge(a.status, this.server?.complete) : nothing}
        ${this.server
          ? html`<span class="muted" data-testid="server-files"
              >On the server: <b data-testid="server-count">${this.server.complete}</b> file(s) uploaded
              (${this.server.images} image, ${this.server.metadata} metadata file(s) registered)</span
            >`
          : nothing}
      </header>
      ${errorLine(this.error)}
      <div
        class="dropzone ${this.dragging ? "over" : ""}"
        data-testid="dropzone"
        @dragover=${(e: DragEvent) => {
          e.preventDefault();
          if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
          if (!this.dragging) {
            this.dragging = true;
            this.changed();
          }
        }}
        @dragleave=${() => {
          this.dragging = false;
          this.changed();
        }}
        @drop=${(e: DragEvent) => this.drop(e)}
      >
        <p><b>Drop files or whole folders here</b>, or</p>
        <div class="row">
          <label class="button">
            Select files
            <input type="file" multiple class="hidden-input" data-testid="file-input" @change=${(e: Event) => this.picked(e)} />
          </label>
          <label class="button">
            Select folder
            <input
              type="file"
              multiple
              webkitdirectory
              class="hidden-input"
              data-testid="folder-input"
              @change=${(e: Event) => this.picked(e)}
            />
          </label>
        </div>
        <p class="hint">
          Names are checked with the server first. Files already on the server are skipped, so after an
          interruption (even a reload of the page) add the same folder again: only the missing files are sent.
        </p>
        ${this.reading || q.busy ? html`<p class="muted" data-testid="checking"><span class="spinner"></span> Checking files…</p>` : nothing}
      </div>
      ${this.notes.map((note) => html`<p class="hint" data-testid="upload-note">${note}</p>`)}
      <div class="toolbar upload-actions">
        <button
          class="primary"
          data-testid="start-upload"
          ?disabled=${counts.ready === 0 || q.busy}
          @click=${() => void q.upload().then(() => this.load())}
        >
          Upload ${counts.ready ? `${counts.ready} file(s)` : "files"}
        </button>
        <button data-testid="retry" ?disabled=${failed === 0 || q.busy} @click=${() => q.retry()}>
          Retry failed${failed ? ` (${failed})` : ""}
        </button>
        <button class="danger" data-testid="cancel" ?disabled=${!q.active} @click=${() => q.cancel()}>Cancel</button>
        <button data-testid="clear" ?disabled=${q.active || q.busy || q.items.length === 0} @click=${() => q.clear()}>
          Clear list
        </button>
      </div>
      ${errorLine(q.error)}
      ${total > 0 ? this.summary(loaded, total, counts) : nothing}
      ${this.refused()}
      ${this.fileTable(counts)}
    </section>`;
  }

  private summary(loaded: number, total: number, counts: Record<FileState, number>): TemplateResult {
    const rate = this.queue.rate();
    const sending = counts.waiting + counts.uploading + counts.complete + counts.failed + counts.cancelled;
    const failed = counts.failed > 0;
    return html`<div class="upload-summary" data-testid="upload-summary">
      ${progressBar(total ? loaded / total : 0, failed ? "failed" : counts.uploading ? "" : "done")}
      <span data-testid="overall-progress">
        ${counts.complete} of ${sending} file(s) · ${formatBytes(loaded)} of ${formatBytes(total)}
        (${total ? Math.floor((loaded / total) * 100) : 0} %)
      </span>
      ${this.queue.active ? html`<span data-testid="rate">${formatRate(rate)}</span>` : nothing}
      ${counts.skipped ? html`<span class="muted">${counts.skipped} already on the server (skipped)</span>` : nothing}
      ${failed
        ? html`<span class="error" data-testid="failed-summary">${counts.failed} failed: press “Retry failed”</span>`
        : nothing}
    </div>`;
  }

  private refused(): TemplateResult | typeof nothing {
    const refused = this.queue.items.filter((item) => item.state === "refused");
    if (refused.length === 0) return nothing;
    return html`<section class="refused" data-testid="refused-files">
      <h3>${refused.length} file(s) refused: they are not uploaded</h3>
      <ul>
        ${refused.slice(0, MAX_ROWS).map(
          (item) =>
            html`<li data-testid="refused-row" data-name=${item.name}>
              <b>${item.path}</b>: <span data-testid="refused-reason">${item.message}</span>
            </li>`,
        )}
      </ul>
      ${refused.length > MAX_ROWS ? html`<p class="muted">… and ${refused.length - MAX_ROWS} more</p>` : nothing}
    </section>`;
  }

  private fileTable(counts: Record<FileState, number>): TemplateResult | typeof nothing {
    const items = this.queue.items.filter(
      (item) => item.state !== "refused" && (this.filter === "all" || item.state === this.filter),
    );
    const listed = this.queue.items.length - counts.refused;
    if (listed === 0) return nothing;
    const chip = (state: FileState | "all", n: number) =>
      html`<button
        class="chip ${this.filter === state ? "active" : ""}"
        data-testid="filter-${state}"
        @click=${() => {
          this.filter = state;
          this.changed();
        }}
      >
        ${state === "all" ? "all" : STATE_LABELS[state]} <span data-testid="count-${state}">${n}</span>
      </button>`;
    return html`<div class="chips">
        ${chip("all", listed)}
        ${FILE_STATES.filter((s) => s !== "refused" && counts[s] > 0).map((s) => chip(s, counts[s]))}
      </div>
      <table class="list files" data-testid="file-list">
        <thead><tr><th>File</th><th>Size</th><th>State</th><th class="bar-cell">Progress</th><th></th></tr></thead>
        <tbody>${items.slice(0, MAX_ROWS).map((item) => this.fileRow(item))}</tbody>
      </table>
      ${items.length > MAX_ROWS
        ? html`<p class="muted">${MAX_ROWS} of ${items.length} shown: pick a state above to see others.</p>`
        : nothing}`;
  }

  private fileRow(item: QueueItem): TemplateResult {
    const fraction = item.state === "complete" ? 1 : item.size ? item.loaded / item.size : 0;
    return html`<tr data-testid="file-row" data-name=${item.name} data-state=${item.state} class="state-${item.state}">
      <td title=${item.path}>${item.name}</td>
      <td>${formatBytes(item.size)}</td>
      <td><span class="file-state ${item.state}" data-testid="file-state">${STATE_LABELS[item.state]}</span></td>
      <td class="bar-cell">${progressBar(fraction, item.state)}</td>
      <td class="message" data-testid="file-message">${item.message}</td>
    </tr>`;
  }
}
