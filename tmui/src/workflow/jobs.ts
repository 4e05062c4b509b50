// The jobs table of one step: virtual scrolling over the server's pages, a state filter and each
// job's log in a dialog.
//
// Only the rows in view (and a few around them) are in the DOM: a fixed-height scroller holds a
// spacer as tall as all rows, and the rows in view are placed at their offset. Pages of jobs are
// fetched with the route's `index` and `batch_size` as the view reaches them, so 10,000 jobs cost
// a few requests and a few dozen rows. A state filter needs every job (the route has no state
// parameter): the table then reads all pages once and scrolls over the matching ones.

import { html, nothing, type TemplateResult } from "lit-html";
import { ApiError, type Api } from "../api/client";
import type { WorkflowJobLog, WorkflowStatus } from "../api/types";
import { errorLine, modal } from "../ui/dialog";
import { formatMemory, formatSeconds } from "./model";

/** px per row (fixed: the row of an index is at index * ROW_HEIGHT) */
export const ROW_HEIGHT = 28;
/** px of the scroller */
const VIEW_HEIGHT = ROW_HEIGHT * 12;
/** rows drawn above and below the view */
const OVERSCAN = 8;
/** jobs per request while scrolling, and rows fetched ahead of the view (the original's buffer) */
const PAGE = 50;
const AHEAD = 50;
/** jobs per request while reading all of them for a filter */
const SCAN_PAGE = 1000;

export const FILTERS: [string, string][] = [
  ["", "all states"],
  ["ok", "done"],
  ["failed", "failed"],
  ["RUNNING", "running"],
  ["SUBMITTED", "submitted"],
  ["NEW", "new"],
];

export function jobFailed(job: WorkflowStatus): boolean {
  return job.state === "TERMINATED" && job.exitcode !== null && job.exitcode !== 0;
}

function matches(job: WorkflowStatus, filter: string): boolean {
  if (filter === "") return true;
  if (filter === "failed") return jobFailed(job);
  if (filter === "ok") return job.state === "TERMINATED" && !jobFailed(job);
  return job.state === filter;
}

interface Page {
  generation: number;
  jobs: WorkflowStatus[];
}

interface LogView {
  job: WorkflowStatus;
  log: WorkflowJobLog | null;
  error: string;
}

export class JobsTable {
  private pages = new Map<number, Page>();
  private loading = new Set<number>();
  /** bumped when the jobs may have changed: pages of older generations are fetched again */
  private generation = 0;
  private total = 0;
  private signature = "";
  private scrollTop = 0;
  private frame = 0;
  private filter = "";
  private matching: WorkflowStatus[] | null = null;
  private scanning = false;
  private lastScan = 0;
  private error = "";
  private log: LogView | null = null;
  private disposed = false;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    readonly stepName: string,
    private readonly changed: () => void,
  ) {}

  dispose(): void {
    this.disposed = true;
    cancelAnimationFrame(this.frame);
  }

  /** The step's node of a new status: its job count; `live` while jobs still change. */
  update(step: WorkflowStatus | undefined, newSubmission: boolean): void {
    const total = step?.total ?? 0;
    const live = step ? step.state !== "TERMINATED" || step.live : false;
    // what changes when any of its jobs changes state
    const signature = step ? `${step.state}/${step.done}/${step.failed}/${total}` : "";
    if (newSubmission) {
      this.pages.clear();
      this.matching = null;
    }
    if (newSubmission || live || signature !== this.signature) {
      this.signature = signature;
      this.generation += 1;
      this.total = total;
      if (this.filter && (!live || Date.now() - this.lastScan > 5000)) void this.scan();
      this.fetchVisible();
    } else if (this.pages.size === 0) {
      this.fetchVisible();
    }
  }

  private get count(): number {
    return this.matching ? this.matching.length : this.total;
  }

  private job(index: number): WorkflowStatus | undefined {
    if (this.matching) return this.matching[index];
    return this.pages.get(Math.floor(index / PAGE))?.jobs[index % PAGE];
  }

  private fetchVisible(): void {
    if (this.filter || this.total === 0) return;
    const first = Math.max(0, Math.floor(this.scrollTop / ROW_HEIGHT) - AHEAD);
    const last = Math.min(this.total, Math.ceil((this.scrollTop + VIEW_HEIGHT) / ROW_HEIGHT) + AHEAD);
    for (let page = Math.floor(first / PAGE); page * PAGE < last; page++) {
      const have = this.pages.get(page);
      if ((have && have.generation === this.generation) || this.loading.has(page)) continue;
      void this.fetchPage(page);
    }
  }

  private async fetchPage(page: number): Promise<void> {
    const generation = this.generation;
    this.loading.add(page);
    try {
      const jobs = await this.api.workflowJobs(this.experimentId, this.stepName, page * PAGE, PAGE);
      this.pages.set(page, { generation, jobs });
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    } finally {
      this.loading.delete(page);
    }
    if (this.disposed) return;
    this.changed();
    // a newer generation arrived while this one was in flight
    if (generation !== this.generation) this.fetchVisible();
  }

  /** Read every job (for a filter) and keep those that match. */
  private async scan(): Promise<void> {
    if (this.scanning) return;
    this.scanning = true;
    this.lastScan = Date.now();
    this.changed();
    const all: WorkflowStatus[] = [];
    try {
      for (let index = 0; ; index += SCAN_PAGE) {
        const jobs = await this.api.workflowJobs(this.experimentId, this.stepName, index, SCAN_PAGE);
        all.push(...jobs);
        if (jobs.length < SCAN_PAGE || this.disposed) break;
      }
      this.matching = all.filter((job) => matches(job, this.filter));
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    } finally {
      this.scanning = false;
    }
    if (!this.disposed) this.changed();
  }

  private setFilter(filter: string): void {
    this.filter = filter;
    this.matching = null;
    this.scrollTop = 0;
    const scroller = document.querySelector<HTMLElement>(`[data-testid=jobs-scroller][data-step="${this.stepName}"]`);
    if (scroller) scroller.scrollTop = 0;
    if (filter) void this.scan();
    else this.fetchVisible();
    this.changed();
  }

  private onScroll = (event: Event): void => {
    this.scrollTop = (event.target as HTMLElement).scrollTop;
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => {
      this.fetchVisible();
      this.changed();
    });
  };

  private async openLog(job: WorkflowStatus): Promise<void> {
    const view: LogView = { job, log: null, error: "" };
    this.log = view;
    this.changed();
    try {
      view.log = await this.api.workflowJobLog(this.experimentId, job.id);
    } catch (err) {
      view.error = err instanceof ApiError ? err.message : String(err);
    }
    if (!this.disposed) this.changed();
  }

  private closeLog = (): void => {
    this.log = null;
    this.changed();
  };

  template(): TemplateResult {
    const count = this.count;
    const first = Math.max(0, Math.floor(this.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(count, Math.ceil((this.scrollTop + VIEW_HEIGHT) / ROW_HEIGHT) + OVERSCAN);
    const rows: TemplateResult[] = [];
    for (let index = first; index < last; index++) rows.push(this.row(index));
    return html`<section class="wf-jobs" data-testid="jobs" data-step=${this.stepName}>
      <div class="row wf-jobs-head">
        <h3>Jobs</h3>
        <span class="muted" data-testid="jobs-count"
          >${this.filter
            ? this.scanning && !this.matching
              ? "reading all jobs…"
              : `${count} of ${this.total}`
            : `${this.total}`}
          jobs</span
        >
        <label
          >State
          <select
            data-testid="jobs-filter"
            @change=${(e: Event) => this.setFilter((e.target as HTMLSelectElement).value)}
          >
            ${FILTERS.map(([value, text]) => html`<option value=${value} ?selected=${value === this.filter}>${text}</option>`)}
          </select></label
        >
      </div>
      ${errorLine(this.error)}
      <div class="wf-job-row wf-job-header" role="row">
        <span></span><span>Name</span><span>State</span><span>Exit code</span><span>Time</span
        ><span>Memory</span><span></span>
      </div>
      <div
        class="wf-jobs-scroller"
        data-testid="jobs-scroller"
        data-step=${this.stepName}
        style="height: ${VIEW_HEIGHT}px"
        @scroll=${this.onScroll}
      >
        <div class="wf-jobs-spacer" style="height: ${count * ROW_HEIGHT}px">${rows}</div>
        ${count === 0
          ? html`<p class="muted wf-jobs-empty">${this.filter ? "No job in this state." : "No jobs yet."}</p>`
          : nothing}
      </div>
      ${this.logDialog()}
    </section>`;
  }

  private row(index: number): TemplateResult {
    const job = this.job(index);
    const top = `top: ${index * ROW_HEIGHT}px`;
    if (!job) {
      return html`<div class="wf-job-row loading" style=${top} data-index=${index}>
        <span></span><span class="muted">…</span>
      </div>`;
    }
    const failed = jobFailed(job);
    const ok = job.state === "TERMINATED" && !failed;
    return html`<div
      class="wf-job-row ${failed ? "failed" : ok ? "ok" : ""}"
      style=${top}
      role="row"
      data-testid="job-row"
      data-index=${index}
      data-name=${job.name}
      data-state=${job.state}
      data-failed=${failed ? "true" : "false"}
    >
      <span class="wf-job-mark">${failed ? "✗" : ok ? "✓" : ""}</span>
      <span class="wf-job-name" title=${job.name}>${job.name}</span>
      <span>${job.state}</span>
      <span>${job.exitcode ?? ""}</span>
      <span>${formatSeconds(job.time)}</span>
      <span>${formatMemory(job.memory)}</span>
      <span
        ><button class="link" data-testid="job-log" @click=${() => void this.openLog(job)}>log</button></span
      >
    </div>`;
  }

  private logDialog(): TemplateResult | typeof nothing {
    const view = this.log;
    if (!view) return nothing;
    const block = (title: string, text: string, testId: string) =>
      html`<h3>${title}</h3>
        <pre class="wf-log" data-testid=${testId}>${text || "(empty)"}</pre>`;
    return modal(
      `Log of ${view.job.name}`,
      html`<p class="muted">
          ${view.job.state}${view.job.exitcode !== null ? `, exit code ${view.job.exitcode}` : ""}
        </p>
        ${errorLine(view.error)}
        ${view.log
          ? html`${block("Standard output", view.log.stdout, "log-stdout")}
            ${block("Standard error", view.log.stderr, "log-stderr")}`
          : view.error
            ? nothing
            : html`<p class="muted">Loading…</p>`}
        <footer><button @click=${this.closeLog}>Close</button></footer>`,
      this.closeLog,
      "job-log-dialog",
    );
  }
}
