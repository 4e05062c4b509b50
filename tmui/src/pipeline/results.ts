// The "Results" pane: the debug jobs' progress and, per job, a green or red panel with the
// selected module's figure and the log.

import { html, nothing, type TemplateResult } from "lit-html";
import type { JtJob, JtJobOutput, JtStatus } from "../api/types";
import type { PipelineScreen } from "./pipeline";

/** Job id of a debug job's task (`jterator_debug_0000003` is job 3). */
export function jobIdOf(task: JtStatus): number | null {
  const match = /^jterator_debug_(\d+)$/.exec(task.name);
  return match ? Number(match[1]) : null;
}

export function siteLabel(job: JtJob | undefined): string {
  return job ? `${job.plate} ${job.well} (x ${job.x}, y ${job.y})` : "";
}

function jobPanel(
  screen: PipelineScreen,
  task: JtStatus,
  output: JtJobOutput | undefined,
): TemplateResult | typeof nothing {
  const id = jobIdOf(task);
  if (id === null) return nothing;
  const ended = task.state === "TERMINATED";
  const failed = ended && (output?.failed ?? task.failed > 0);
  const kind = !ended ? "running" : failed ? "failed" : "ok";
  const module = screen.selectedName();
  return html`<li class="jt-job ${kind}" data-testid="job-result" data-job=${id} data-state=${kind}>
    <div class="row">
      <b>Job ${id}</b>
      <span class="muted">${siteLabel(screen.jobById(id))}</span>
    </div>
    <div class="row">
      <span>${!ended ? task.state.toLowerCase() : failed ? `failed (exit code ${task.exitcode ?? output?.exitcode ?? "?"})` : "done"}</span>
      <button data-testid="show-figure" ?disabled=${!ended || !module}
        title=${module ? `Figure of ${module}` : "Select a module first"}
        @click=${() => screen.showFigure(id, module)}>Figure</button>
      <button data-testid="show-log" ?disabled=${!output} @click=${() => output && screen.showLog(output)}>Log</button>
    </div>
    ${failed && output?.stderr
      ? html`<pre class="jt-log-tail error">${output.stderr.trim().split("\n").slice(-3).join("\n")}</pre>`
      : nothing}
  </li>`;
}

export function resultsPane(screen: PipelineScreen): TemplateResult {
  const run = screen.run;
  const status = run?.status ?? null;
  const outputs = new Map((run?.outputs ?? []).map((o) => [o.id, o]));
  return html`<section class="jt-pane jt-results" data-testid="results">
    <h3>Results</h3>
    ${run?.error ? html`<p class="error" role="alert" data-testid="results-error">${run.error}</p>` : nothing}
    ${status === null
      ? html`<p class="muted">Run the pipeline on up to 10 sites to see each module's figure and the log here.</p>`
      : html`<p data-testid="run-state" data-state=${status.state} data-submission=${status.submission_id ?? ""}>
            ${status.state === "TERMINATED" ? "Finished" : status.state.toLowerCase()}: ${status.done} of
            ${status.total} done${status.failed ? html`, <span class="error">${status.failed} failed</span>` : nothing}
          </p>
          <progress max=${status.total || 1} value=${status.done}></progress>
          ${status.state === "TERMINATED" && !screen.selectedName()
            ? html`<p class="hint">Select a module to see its figures.</p>`
            : nothing}
          <ul class="jt-list jt-jobs">
            ${status.subtasks.map((t) => jobPanel(screen, t, outputs.get(jobIdOf(t) ?? -1)))}
          </ul>`}
  </section>`;
}
