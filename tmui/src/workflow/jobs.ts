// The jobs table of one step: virtual scrolling over the server's pages, a state filter and each
// job's log in a dialog.
//
// Only the rows in view (and a few around them) are in the DOM: a fixed-height scroller holds a
// spacer as tall as all rows, and the rows in view are placed at their offset. Pages of jobs are
// fetched with the route's `index` and `batch_size` as the view reaches them, so 10,000 jobs cost
// a few requests and a few dozen rows. The state filter is the route's `state`: the server pages
// through the matching jobs and counts them, so a filter costs no more than the full list.

import { html, nothing, type TemplateResult } from "lit-html";
import { ApiError, type Api } from "../api/client";
import type { WorkflowJobFilter, WorkflowJobLog, WorkflowStatus } from "../api/types";
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
/** ms the view rests after a jump before its pages are fetched: a fling asks only where it stops */
const REST_MS = 100;

/** The filter's values (the route's `state`, "" for all) and their labels. */
export const FILTERS: [WorkflowJobFilter | "", string][] = [
  ["", "all states"],
  ["SUCCEEDED", "done"],
  ["FAILED", "failed"],
  ["RUNNING", "running"],
  ["SUBMITTED", "submitted"],
  ["NEW", "new"],
  ["TERMINATED", "ended (done or failed)"],
];

/** The server's rule (FAILED): ended with an exit code other than 0. */
export function jobFailed(job: WorkflowStatus): boolean {
  return job.state === "TERMINATED" && job.exitcode !== null && job.exitcode !== 0;
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
  /** pages in flight, with the generation they ask for */
  private loading = new Map<number, number>();
  /** bumped when the jobs may have changed: pages of older generations are fetched again */
  private generation = 0;
  /** bumped when the filter or the submission changes: answers of older epochs are dropped */
  private epoch = 0;
  /** jobs of the step (from its status node) */
  private stepTotal = 0;
  /** jobs that pass the filter (the server counts them); null until the first answer */
  private total: number | null = 0;
  private signature = "";
  private scrollTop = 0;
  private frame = 0;
  private fetchTimer = 0;
  private filter: WorkflowJobFilter | "" = "";
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
    window.clearTimeout(this.fetchTimer);
  }

  /** The step's node of a new status: its job count; `live` while jobs still change. */
  update(step: WorkflowStatus | undefined, newSubmission: boolean): void {
    const total = step?.total ?? 0;
    const live = step ? step.state !== "TERMINATED" || step.live : false;
    // what changes when any of its jobs changes state
    const signature = step ? `${step.state}/${step.done}/${step.failed}/${total}` : "";
    if (newSubmission) this.restart();
    if (newSubmission || live || signature !== this.signature) {
      this.signature = signature;
      this.generation += 1;
      this.stepTotal = total;
      // unfiltered, the status's count is the fresh one; a filter's count comes with its pages
      if (!this.filter) this.total = total;
      this.fetchVisible();
    } else if (this.pages.size === 0) {
      this.fetchVisible();
    }
  }

  /** Forget every page (a new filter or submission); answers in flight are dropped. */
  private restart(): void {
    this.epoch += 1;
    this.pages.clear();
    this.loading.clear();
  }

  private job(index: number): WorkflowStatus | undefined {
    return this.pages.get(Math.floor(index / PAGE))?.jobs[index % PAGE];
  }

  /** The rows [first, last) to draw or fetch around the view, `margin` rows on each side. */
  private window(margin: number): [number, number] {
    const count = this.total ?? PAGE; // unknown: ask for the first page, which says
    const first = Math.max(0, Math.floor(this.scrollTop / ROW_HEIGHT) - margin);
    const last = Math.min(count, Math.ceil((this.scrollTop + VIEW_HEIGHT) / ROW_HEIGHT) + margin);
    return [first, last];
  }

  private fetchVisible(): void {
    const [first, last] = this.window(AHEAD);
    for (let page = Math.floor(first / PAGE); page * PAGE < last; page++) {
      const have = this.pages.get(page);
      if (have && have.generation === this.generation) continue;
      if (this.loading.get(page) === this.generation) continue;
      void this.fetchPage(page);
    }
  }

  private async fetchPage(page: number): Promise<void> {
    const { generation, epoch, filter } = this;
    this.loading.set(page, generation);
    try {
      const answer = await this.api.workflowJobs(
        this.experimentId,
        this.stepName,
        page * PAGE,
        PAGE,
        filter || undefined,
      );
      if (epoch !== this.epoch) return; // another filter or submission by now
      this.pages.set(page, { generation, jobs: answer.data });
      this.total = answer.total;
      this.error = "";
    } catch (err) {
      if (epoch !== this.epoch) return;
      // not retried at once: the next status poll or scroll asks again
      this.error = err instanceof Error ? err.message : String(err);
      if (!this.disposed) this.changed();
      return;
    } finally {
      if (epoch === this.epoch && this.loading.get(page) === generation) this.loading.delete(page);
    }
    if (this.disposed) return;
    this.changed();
    // a newer generation arrived while this one was in flight, or the count grew into view
    this.fetchVisible();
  }

  private setFilter(filter: WorkflowJobFilter | ""): void {
    this.filter = filter;
    this.restart();
    this.total = filter ? null : this.stepTotal;
    this.scrollTop = 0;
    const scroller = document.querySelector<HTMLElement>(`[data-testid=jobs-scroller][data-step="${this.stepName}"]`);
    if (scroller) scroller.scrollTop = 0;
    this.fetchVisible();
    this.changed();
  }

  private onScroll = (event: Event): void => {
    const top = (event.target as HTMLElement).scrollTop;
    const jumped = Math.abs(top - this.scrollTop) > VIEW_HEIGHT;
    this.scrollTop = top;
    // draw the rows of the new place at the next frame (placeholders where pages are missing)
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.changed());
    // reading along: fetch ahead now; a jump of more than a view (a fling, a drag of the
    // scroll bar) passes pages nobody reads: fetch where it comes to rest
    window.clearTimeout(this.fetchTimer);
    if (!jumped) this.fetchVisible();
    this.fetchTimer = window.setTimeout(() => this.fetchVisible(), REST_MS);
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
    const count = this.total ?? 0;
    const [first, last] = this.window(OVERSCAN);
    const rows: TemplateResult[] = [];
    for (let index = first; index < last; index++) rows.push(this.row(index));
    return html`<section class="wf-jobs" data-testid="jobs" data-step=${this.stepName}>
      <div class="row wf-jobs-head">
        <h3>Jobs</h3>
        <span class="muted" data-testid="jobs-count" data-total=${this.total ?? ""}
          >${this.filter
            ? this.total === null
              ? "counting…"
              : `${this.total} of ${this.stepTotal}`
            : `${count}`}
          jobs</span
        >
        <label
          >State
          <select
            data-testid="jobs-filter"
            @change=${(e: Event) => this.setFilter((e.target as HTMLSelectElement).value as WorkflowJobFilter | "")}
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
        ${this.total === 0
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
      title=${failed && job.reason ? job.reason : nothing}
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
          ${view.job.state}${view.job.exitcode !== null ? `, exit code ${view.job.exitcode}` : ""}${view
            .job.node
            ? `, on node ${view.job.node}`
            : ""}
        </p>
        ${view.job.reason && jobFailed(view.job)
          ? html`<p class="error" data-testid="job-reason">${view.job.reason}</p>`
          : nothing}
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
