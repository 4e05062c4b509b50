// The editor's dialogs: a module's source, the job list (choose up to 10 sites and run), a
// figure and a job's log.

import { html, nothing, type TemplateResult } from "lit-html";
import { ref } from "lit-html/directives/ref.js";
import type { JtJob, JtJobOutput, PlotlyFigure } from "../api/types";
import { errorLine, modal } from "../ui/dialog";
import { figureView } from "./figure";
import type { PipelineScreen } from "./pipeline";

/** At most this many debug jobs per run (the server's limit). */
export const MAX_JOBS = 10;

export type Dialog =
  | { kind: "source"; module: string; text: string | null; error: string }
  | { kind: "jobs"; chosen: number[]; error: string }
  | { kind: "figure"; jobId: number; module: string; figure: PlotlyFigure | null; error: string }
  | { kind: "log"; output: JtJobOutput }
  | { kind: "leave"; answer: (leave: boolean) => void; error: string }
  | null;

/** Focus an element once, when it appears (after lit has put it into the page). */
export const focusOnce = ref((el) => {
  if (el instanceof HTMLElement && !el.dataset.focused) {
    el.dataset.focused = "1";
    requestAnimationFrame(() => {
      el.focus();
      if (el instanceof HTMLInputElement) el.select();
    });
  }
});

function jobsBody(screen: PipelineScreen, chosen: number[], error: string): TemplateResult {
  const jobs: JtJob[] | null = screen.jobs;
  const toggle = (id: number, on: boolean) => screen.chooseJob(id, on);
  return html`<p class="hint">One job per site. Choose up to ${MAX_JOBS} sites to run the pipeline on, with
      figures; the pipeline is saved first.</p>
    ${jobs === null
      ? html`<p class="muted">Loading the job list…</p>`
      : jobs.length === 0
        ? html`<p class="muted">The experiment has no sites yet.</p>`
        : html`<div class="jt-joblist">
            <table class="list" data-testid="job-list">
              <thead><tr><th></th><th>Job</th><th>Plate</th><th>Well</th><th>x</th><th>y</th></tr></thead>
              <tbody>
                ${jobs.map((j) => {
                  const on = chosen.includes(j.id);
                  return html`<tr data-testid="job-row" data-job=${j.id}>
                    <td><input type="checkbox" data-testid="choose-job" .checked=${on}
                      ?disabled=${!on && chosen.length >= MAX_JOBS}
                      @change=${(e: Event) => toggle(j.id, (e.target as HTMLInputElement).checked)} /></td>
                    <td>${j.id}</td><td>${j.plate}</td><td>${j.well}</td><td>${j.x}</td><td>${j.y}</td>
                  </tr>`;
                })}
              </tbody>
            </table>
          </div>`}
    ${errorLine(error)}
    <footer>
      <span class="muted">${chosen.length} of at most ${MAX_JOBS} chosen</span>
      <button @click=${() => screen.closeDialog()}>Close</button>
      <button class="primary" data-testid="run-jobs" ?disabled=${chosen.length === 0 || screen.busy !== ""}
        ${focusOnce} @click=${() => void screen.runJobs()}>Run ${chosen.length} job${chosen.length === 1 ? "" : "s"}</button>
    </footer>`;
}

function figureBody(screen: PipelineScreen, d: Extract<Dialog, { kind: "figure" }>): TemplateResult {
  const names = screen.moduleNamesForFigures();
  return html`<div class="row">
      <label class="compact">Module
        <select data-testid="figure-module" ${focusOnce}
          @change=${(e: Event) => screen.showFigure(d.jobId, (e.target as HTMLSelectElement).value)}>
          ${names.map((n) => html`<option ?selected=${n === d.module}>${n}</option>`)}
        </select>
      </label>
      <span class="muted">job ${d.jobId}</span>
    </div>
    ${d.error
      ? html`<p class="error" role="alert" data-testid="figure-error">${d.error}</p>`
      : d.figure === null
        ? html`<p class="muted">Loading the figure…</p>`
        : figureView(d.figure)}`;
}

export function dialogTemplate(screen: PipelineScreen): TemplateResult | typeof nothing {
  const d = screen.dialog;
  const close = () => screen.closeDialog();
  if (d === null) return nothing;
  switch (d.kind) {
    case "source":
      return modal(
        `Source of ${d.module}`,
        html`${errorLine(d.error)}
          ${d.text === null && !d.error ? html`<p class="muted">Loading…</p>` : nothing}
          ${d.text !== null ? html`<pre class="jt-source-code" data-testid="source-code" tabindex="0" ${focusOnce}>${d.text}</pre>` : nothing}`,
        close,
        "source-dialog",
      );
    case "jobs":
      return modal("Run on sites", jobsBody(screen, d.chosen, d.error), close, "jobs-dialog");
    case "figure":
      return modal(`Figure of ${d.module}`, figureBody(screen, d), close, "figure-dialog");
    case "leave":
      return modal(
        "Unsaved changes",
        html`<p data-testid="leave-message">The pipeline has changes that are not saved. Leave the editor
            anyway?</p>
          ${errorLine(d.error)}
          <footer>
            <button data-testid="leave-stay" ${focusOnce} @click=${() => d.answer(false)}>Stay</button>
            <button class="danger" data-testid="leave-discard" @click=${() => d.answer(true)}>
              Leave without saving</button>
            <button class="primary" data-testid="leave-save" ?disabled=${screen.busy !== ""}
              @click=${() => void screen.saveAndLeave()}>Save and leave</button>
          </footer>`,
        close,
        "leave-dialog",
      );
    case "log":
      return modal(
        `Log of job ${d.output.id}`,
        html`<p class="muted">state ${d.output.state}, exit code ${d.output.exitcode ?? "–"}</p>
          <h4>Standard output</h4>
          <pre class="jt-log" data-testid="log-stdout" tabindex="0" ${focusOnce}>${d.output.stdout || "(empty)"}</pre>
          <h4>Standard error</h4>
          <pre class="jt-log" data-testid="log-stderr">${d.output.stderr || "(empty)"}</pre>`,
        close,
        "log-dialog",
      );
  }
}
