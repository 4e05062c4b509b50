// The workflow manager of an experiment: stages and steps with their state, every argument of
// every step, Save, Submit, Resume, Resubmit and Kill, and the jobs of each step.
//
// Status is polled: the server has no push channel (no server-sent events or websockets; its
// workers are plain WSGI), and the status route answers from the database in milliseconds.
// Every 2 s while the workflow runs, every 10 s otherwise; dispose() stops it.

import { html, nothing, type TemplateResult } from "lit-html";
import { ApiError, type Api } from "../api/client";
import type {
  WorkflowDescription,
  WorkflowStageDescription,
  WorkflowStatus,
  WorkflowStepDescription,
} from "../api/types";
import { errorLine, modal } from "../ui/dialog";
import { experimentNav } from "../ui/experimentnav";
import { argumentRow } from "./args";
import { JobsTable } from "./jobs";
import {
  ARGUMENT_GROUPS,
  buttons,
  childNamed,
  descriptionToSave,
  label,
  nodeState,
  parseArgument,
  resumeStage,
  stageMissing,
  stepArguments,
  stepMissing,
  valueError,
  type ArgumentGroup,
} from "./model";
import { progressBar, stateIcon, tabs } from "./status";

const FAST_POLL_MS = 2000;
const SLOW_POLL_MS = 10000;
const LIVE_STATES = new Set(["NEW", "SUBMITTED", "RUNNING"]);
const ANALYSIS_STAGE = "image_analysis";

type Dialog =
  | { kind: "submit"; error: string; busy: boolean }
  | { kind: "resubmit"; stage: string; error: string; busy: boolean }
  | null;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class WorkflowScreen {
  private name = "";
  private description: WorkflowDescription | null = null;
  /** the description as last stored (what Save would send, as JSON) */
  private saved = "";
  /** refused entries and their reasons, by `step/group/argument` */
  private raw = new Map<string, string>();
  private errors = new Map<string, string>();
  private status: WorkflowStatus | null = null;
  private statusLoaded = false;
  private uploadReady: boolean | null = null;
  private pipeline: string[] | null = null;
  private stage = "";
  private step = "";
  private jobs = new Map<string, JobsTable>();
  private loadError = "";
  private actionError = "";
  private notice = "";
  private busy = "";
  private dialog: Dialog = null;
  private timer = 0;
  private disposed = false;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    private readonly changed: () => void,
  ) {
    document.title = "Workflow · TissueMAPS";
    void this.load();
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.timer);
    for (const table of this.jobs.values()) table.dispose();
  }

  // ---------------------------------------------------------------- loading

  private async load(): Promise<void> {
    const id = this.experimentId;
    try {
      const [experiment, description] = await Promise.all([
        this.api.experiment(id),
        this.api.workflowDescription(id),
      ]);
      this.name = experiment.name;
      document.title = `Workflow · ${experiment.name} · TissueMAPS`;
      this.setDescription(description);
      this.stage = description.stages[0]?.name ?? "";
      this.step = description.stages[0]?.steps[0]?.name ?? "";
    } catch (err) {
      this.loadError = message(err);
    }
    if (this.disposed) return;
    this.changed();
    await this.checkUpload();
    await this.poll();
  }

  private setDescription(description: WorkflowDescription): void {
    this.description = description;
    this.saved = JSON.stringify(descriptionToSave(description));
    this.raw.clear();
    this.errors.clear();
  }

  private async checkUpload(): Promise<void> {
    try {
      const plates = await this.api.plates(this.experimentId);
      this.uploadReady = plates.length > 0 && plates.every((p) => p.status === "COMPLETE");
    } catch {
      this.uploadReady = null; // unknown: the server decides on submit
    }
  }

  private async poll(): Promise<void> {
    window.clearTimeout(this.timer);
    try {
      const status = await this.api.workflowStatus(this.experimentId);
      const newSubmission = status?.submission_id !== this.status?.submission_id;
      this.status = status;
      this.statusLoaded = true;
      for (const table of this.jobs.values()) {
        table.update(this.stepNode(table.stepName), newSubmission);
      }
      if (this.uploadReady === false) await this.checkUpload();
    } catch (err) {
      // keep the last status; say why it is not fresh
      this.actionError = `Status not refreshed: ${message(err)}`;
    }
    if (this.disposed) return;
    this.changed();
    const live = this.status !== null && LIVE_STATES.has(this.status.state);
    this.timer = window.setTimeout(() => void this.poll(), live ? FAST_POLL_MS : SLOW_POLL_MS);
  }

  private stageNode(stage: string): WorkflowStatus | undefined {
    return childNamed(this.status, stage);
  }

  private stepNode(step: string): WorkflowStatus | undefined {
    for (const stage of this.status?.subtasks ?? []) {
      const node = childNamed(stage, step);
      if (node) return node;
    }
    return undefined;
  }

  private jobsOf(step: string): JobsTable {
    let table = this.jobs.get(step);
    if (!table) {
      table = new JobsTable(this.api, this.experimentId, step, this.changed);
      this.jobs.set(step, table);
      table.update(this.stepNode(step), true);
    }
    return table;
  }

  // ---------------------------------------------------------------- editing

  private get dirty(): boolean {
    return this.description !== null && JSON.stringify(descriptionToSave(this.description)) !== this.saved;
  }

  /** Whether the last submission still runs: its stages, steps and arguments are locked then. */
  private get locked(): boolean {
    return buttons(this.status?.state ?? null, true).kill;
  }

  private edit(
    step: WorkflowStepDescription,
    group: ArgumentGroup,
    name: string,
    raw: string | boolean,
    badInput: boolean,
  ): void {
    const arg = step[group]?.find((a) => a.name === name);
    if (!arg || this.locked) return;
    const key = `${step.name}/${group}/${name}`;
    const parsed = parseArgument(arg, raw, badInput);
    if (parsed.ok) {
      arg.value = parsed.value;
      this.raw.delete(key);
      this.errors.delete(key);
    } else {
      this.raw.set(key, String(raw));
      this.errors.set(key, parsed.error);
    }
    this.notice = "";
    this.changed();
  }

  /** Switch a stage (`step` undefined) or a step on or off; stored with Save. */
  private setActive(stage: string, step: string | undefined, active: boolean): void {
    if (this.locked) return;
    const target = this.description?.stages.find((s) => s.name === stage);
    const node = step === undefined ? target : target?.steps.find((s) => s.name === step);
    if (!node) return;
    node.active = active;
    this.notice = "";
    this.changed();
  }

  /** Why the description cannot be sent, or "" (refused entries stay in the page). */
  private refusal(): string {
    if (this.errors.size > 0) {
      const [first] = this.errors.keys();
      const [step, , name] = first.split("/");
      return `Fix the marked argument${this.errors.size > 1 ? "s" : ""} first (${step}: ${name}).`;
    }
    // values are checked as they are typed; this also catches one of a wrong type or range
    // that came some other way (an older description), before the server refuses it
    for (const stage of this.description?.stages ?? []) {
      for (const step of stage.steps) {
        const wrong = stepArguments(step).map(valueError).find((error) => error !== "");
        if (wrong) return `Fix ${step.name}'s arguments first: ${wrong}`;
      }
    }
    return "";
  }

  private async save(): Promise<void> {
    const description = this.description;
    if (!description) return;
    const refused = this.refusal();
    if (refused) {
      this.actionError = `Not saved. ${refused}`;
      this.changed();
      return;
    }
    await this.act("save", async () => {
      const payload = descriptionToSave(description);
      await this.api.saveWorkflowDescription(this.experimentId, payload);
      this.saved = JSON.stringify(payload);
      this.notice = "Saved.";
    }, "Not saved");
  }

  /** Run an action of the header: busy while it runs, its error shown next to the buttons. */
  private async act(name: string, action: () => Promise<void>, failure: string): Promise<void> {
    this.busy = name;
    this.actionError = "";
    this.notice = "";
    this.changed();
    try {
      await action();
    } catch (err) {
      this.actionError = `${failure}: ${this.explain(err)}`;
    }
    this.busy = "";
    if (!this.disposed) this.changed();
  }

  private explain(err: unknown): string {
    if (err instanceof ApiError && err.status === 409) {
      return `the workflow is still running (${err.message}). Wait for it to end, or kill it first.`;
    }
    if (err instanceof ApiError && err.status === 403) {
      return `you may not change this experiment (${err.message}).`;
    }
    return message(err);
  }

  // ---------------------------------------------------------------- actions

  /** The description to send with a submission: the edited one if it differs from the stored. */
  private pending(): WorkflowDescription | undefined {
    return this.dirty && this.description ? descriptionToSave(this.description) : undefined;
  }

  private async submit(): Promise<void> {
    const dialog = this.dialog;
    if (dialog?.kind !== "submit") return;
    await this.runDialog(dialog, async () => {
      const description = this.pending();
      await this.api.submitWorkflow(this.experimentId, description);
      if (description) this.saved = JSON.stringify(description);
      this.notice = "Workflow submitted.";
    });
  }

  private async resubmit(): Promise<void> {
    const dialog = this.dialog;
    if (dialog?.kind !== "resubmit") return;
    await this.runDialog(dialog, async () => {
      const description = this.pending();
      await this.api.resubmitWorkflow(this.experimentId, { stageName: dialog.stage }, description);
      if (description) this.saved = JSON.stringify(description);
      this.notice = `Workflow resubmitted from ${label(dialog.stage)}.`;
    });
  }

  private async runDialog(dialog: NonNullable<Dialog>, action: () => Promise<void>): Promise<void> {
    const refused = this.refusal();
    if (refused) {
      dialog.error = refused;
      this.changed();
      return;
    }
    dialog.busy = true;
    dialog.error = "";
    this.changed();
    try {
      await action();
      this.dialog = null;
      await this.poll();
    } catch (err) {
      dialog.error = this.explain(err);
      // someone else's submission runs: show it (and turn Kill on) without waiting for the poll
      if (err instanceof ApiError && err.status === 409) void this.poll();
    }
    dialog.busy = false;
    if (!this.disposed) this.changed();
  }

  private async resume(): Promise<void> {
    const stage = resumeStage(this.status);
    if (stage === null) {
      this.notice = "Every stage of the last submission is done: nothing to resume.";
      this.changed();
      return;
    }
    const refused = this.refusal();
    if (refused) {
      this.actionError = `Not resumed. ${refused}`;
      this.changed();
      return;
    }
    await this.act("resume", async () => {
      await this.api.resubmitWorkflow(this.experimentId, { stageName: stage }, this.pending());
      this.notice = `Workflow resumed at ${label(stage)}.`;
      await this.poll();
    }, "Not resumed");
  }

  private async kill(): Promise<void> {
    await this.act("kill", async () => {
      await this.api.killWorkflow(this.experimentId);
      this.notice = "Kill sent.";
      await this.poll();
    }, "Not killed");
  }

  private select(stage: string, step?: string): void {
    this.stage = stage;
    const steps = this.description?.stages.find((s) => s.name === stage)?.steps ?? [];
    this.step = step ?? (steps.some((s) => s.name === this.step) ? this.step : (steps[0]?.name ?? ""));
    if (this.stage === ANALYSIS_STAGE && this.pipeline === null) void this.loadPipeline();
    this.changed();
  }

  private async loadPipeline(): Promise<void> {
    this.pipeline = [];
    try {
      const project = await this.api.jtProject(this.experimentId);
      this.pipeline = project.pipeline.pipeline.map((entry) =>
        entry.handles.replace(/^.*\//, "").replace(/\.handles\.ya?ml$/, ""),
      );
    } catch {
      this.pipeline = null;
    }
    if (!this.disposed) this.changed();
  }

  // ---------------------------------------------------------------- drawing

  template(): TemplateResult {
    return html`${experimentNav(this.experimentId, "workflow", this.name)}
      <main class="page workflow" data-testid="workflow">
        ${this.loadError
          ? html`<p class="error" role="alert" data-testid="workflow-load-error">
              The workflow cannot be shown: ${this.loadError}
            </p>`
          : this.description === null
            ? html`<p class="muted">Loading…</p>`
            : this.body(this.description)}
        ${this.dialogTemplate()}
      </main>`;
  }

  private body(description: WorkflowDescription): TemplateResult {
    const stage = description.stages.find((s) => s.name === this.stage) ?? description.stages[0];
    return html`${this.header(description)}
      ${tabs(
        "stage",
        description.stages.map((s) => ({
          name: s.name,
          state: nodeState(this.stageNode(s.name), stageMissing(s)),
          active: s.active,
        })),
        stage?.name ?? "",
        (name) => this.select(name),
        { locked: this.locked, toggle: (name, on) => this.setActive(name, undefined, on) },
      )}
      ${stage ? this.stageView(stage) : html`<p class="muted">This workflow has no stages.</p>`}`;
  }

  private header(description: WorkflowDescription): TemplateResult {
    const status = this.status;
    const state = status?.state ?? null;
    const on = buttons(state, this.uploadReady !== false);
    const running = state === "RUNNING";
    const busy = this.busy !== "";
    const active = description.stages.filter((s) => s.active);
    return html`<section class="wf-header" data-testid="workflow-header">
      <div class="row">
        <h1>Workflow</h1>
        <span class="wf-state" data-testid="workflow-state" data-state=${state ?? "none"}>
          ${running ? html`<span class="wf-icon running">${stateIcon("running")}</span>` : nothing}
          ${this.statusLoaded ? (state ?? "not submitted yet") : "…"}
        </span>
        <span class="muted">${description.type} workflow</span>
        ${this.dirty || this.errors.size > 0
          ? html`<span class="wf-dirty" data-testid="unsaved">unsaved changes</span>`
          : nothing}
      </div>
      ${progressBar(status ?? undefined, "workflow-progress")}
      <div class="row wf-actions">
        <button
          data-testid="save"
          ?disabled=${busy || (!this.dirty && this.errors.size === 0)}
          title="Store the arguments (POST …/workflow/description)"
          @click=${() => void this.save()}
        >
          Save
        </button>
        <button
          class="primary"
          data-testid="submit"
          ?disabled=${busy || !on.submit}
          @click=${() => {
            this.dialog = { kind: "submit", error: "", busy: false };
            this.changed();
          }}
        >
          Submit
        </button>
        <button data-testid="resume" ?disabled=${busy || !on.resume} @click=${() => void this.resume()}>
          Resume
        </button>
        <button
          data-testid="resubmit"
          ?disabled=${busy || !on.resubmit}
          @click=${() => {
            const here = active.some((s) => s.name === this.stage) ? this.stage : (active[0]?.name ?? "");
            this.dialog = { kind: "resubmit", stage: here, error: "", busy: false };
            this.changed();
          }}
        >
          Resubmit…
        </button>
        <button class="danger" data-testid="kill" ?disabled=${busy || !on.kill} @click=${() => void this.kill()}>
          Kill
        </button>
        ${this.uploadReady === false
          ? html`<span class="hint" data-testid="upload-hint"
              >Submit is off until every plate is uploaded:
              <a href="/experiments/${this.experimentId}/upload" data-link>upload files</a>.</span
            >`
          : nothing}
        ${this.notice ? html`<span class="notice" data-testid="workflow-notice">${this.notice}</span>` : nothing}
      </div>
      ${this.actionError
        ? html`<p class="error" role="alert" data-testid="workflow-error">${this.actionError}</p>`
        : nothing}
    </section>`;
  }

  private stageView(stage: WorkflowStageDescription): TemplateResult {
    const node = this.stageNode(stage.name);
    const step = stage.steps.find((s) => s.name === this.step) ?? stage.steps[0];
    return html`<section class="wf-stage" data-testid="stage" data-name=${stage.name}>
      <div class="row wf-level">
        <h2>${label(stage.name)}</h2>
        <span class="muted">${stage.mode}${stage.active ? "" : " · inactive"}</span>
        ${stateIcon(nodeState(node))}
      </div>
      ${progressBar(node, "stage-progress")}
      ${stage.name === ANALYSIS_STAGE ? this.pipelinePanel(node) : nothing}
      ${stage.active
        ? nothing
        : html`<p class="wf-inactive-note" data-testid="stage-inactive">
            This stage is switched off: Submit skips it (tick its tab to switch it on).
          </p>`}
      ${tabs(
        "step",
        stage.steps.map((s) => ({
          name: s.name,
          state: nodeState(this.stepNode(s.name), stage.active && stepMissing(s)),
          active: s.active,
        })),
        step?.name ?? "",
        (name) => this.select(stage.name, name),
        { locked: this.locked, toggle: (name, on) => this.setActive(stage.name, name, on) },
      )}
      ${step ? this.stepView(step) : nothing}
    </section>`;
  }

  private pipelinePanel(node: WorkflowStatus | undefined): TemplateResult {
    const running = node?.state === "RUNNING";
    const modules = this.pipeline;
    return html`<div class="wf-pipeline" data-testid="pipeline-panel">
      <span
        >jterator project:
        ${modules === null
          ? html`<span class="muted">not readable</span>`
          : modules.length === 0
            ? html`<span class="muted">no modules (the default pipeline is written at the first run)</span>`
            : modules.join(" → ")}</span
      >
      ${running
        ? html`<span class="button disabled" title="The stage is running" data-testid="edit-pipeline"
            >Edit pipeline</span
          >`
        : html`<a class="button" href="/experiments/${this.experimentId}/pipeline" data-link data-testid="edit-pipeline"
            >Edit pipeline</a
          >`}
    </div>`;
  }

  private stepView(step: WorkflowStepDescription): TemplateResult {
    const node = this.stepNode(step.name);
    return html`<section class="wf-step" data-testid="step" data-name=${step.name}>
      <div class="row wf-level">
        <h3>${step.fullname ?? step.name}</h3>
        <span class="muted">${step.name}${step.active ? "" : " · inactive"}</span>
        ${stateIcon(nodeState(node, stepMissing(step)))}
      </div>
      ${step.help ? html`<p class="hint">${step.help}</p>` : nothing}
      ${step.active
        ? nothing
        : html`<p class="wf-inactive-note" data-testid="step-inactive">
            This step is switched off: it does not run with its stage.
          </p>`}
      ${progressBar(node, "step-progress")}
      <div class="wf-panels">
        ${ARGUMENT_GROUPS.map(([group, title]) => {
          const args = step[group];
          // the original's "Extra arguments" panel: shown only where the server sends some
          if (args === undefined || (group === "extra_args" && args.length === 0)) return nothing;
          return html`<fieldset class="wf-panel" data-testid="panel-${group}">
            <legend>${title}</legend>
            ${args.length === 0 ? html`<p class="muted">None.</p>` : nothing}
            ${args.map((arg) => {
              const key = `${step.name}/${group}/${arg.name}`;
              return argumentRow(
                {
                  arg,
                  raw: this.raw.get(key),
                  error: this.errors.get(key),
                  locked: this.locked,
                  onInput: (raw, badInput) => this.edit(step, group, arg.name, raw, badInput),
                },
                `${step.name}-${group}`,
              );
            })}
          </fieldset>`;
        })}
      </div>
      ${this.jobsOf(step.name).template()}
    </section>`;
  }

  private close = (): void => {
    if (this.dialog?.busy) return;
    this.dialog = null;
    this.changed();
  };

  private dialogTemplate(): TemplateResult | typeof nothing {
    const d = this.dialog;
    const description = this.description;
    if (d === null || description === null) return nothing;
    const active = description.stages.filter((s) => s.active);
    if (d.kind === "submit") {
      return modal(
        "Submit the workflow",
        html`<p>
            Run every active stage (${active.map((s) => label(s.name)).join(", ")})? Earlier results of
            these stages are replaced.
          </p>
          ${this.dirty ? html`<p class="hint">Your unsaved changes are saved first.</p>` : nothing}
          ${errorLine(d.error)}
          <footer>
            <button @click=${this.close} ?disabled=${d.busy}>Cancel</button>
            <button
              class="primary"
              data-testid="confirm-submit"
              ?disabled=${d.busy}
              @click=${() => void this.submit()}
            >
              Submit
            </button>
          </footer>`,
        this.close,
        "submit-dialog",
      );
    }
    return modal(
      "Resubmit the workflow",
      html`<label class="wf-dialog-field"
          >Run again from stage
          <select
            data-testid="resubmit-stage"
            @change=${(e: Event) => {
              d.stage = (e.target as HTMLSelectElement).value;
              this.changed();
            }}
          >
            ${active.map(
              (s) => html`<option value=${s.name} ?selected=${s.name === d.stage}>${label(s.name)}</option>`,
            )}
          </select></label
        >
        <p class="hint">That stage and every later one run again.</p>
        ${this.dirty ? html`<p class="hint">Your unsaved changes are saved first.</p>` : nothing}
        ${errorLine(d.error)}
        <footer>
          <button @click=${this.close} ?disabled=${d.busy}>Cancel</button>
          <button
            class="primary"
            data-testid="confirm-resubmit"
            ?disabled=${d.busy || !d.stage}
            @click=${() => void this.resubmit()}
          >
            Resubmit
          </button>
        </footer>`,
      this.close,
      "resubmit-dialog",
    );
  }
}
