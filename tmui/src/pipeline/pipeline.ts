// The jterator editor of an experiment: available modules, pipeline settings, module settings
// and results (web-ui.md §1, "jterator editor"). Hotkeys: s save, c check, r run, j/k and the
// arrows move between modules (not while typing). Leaving with unsaved changes asks first: the
// app's own navigation through the router's leave guard, a reload or closing the tab through
// the browser's "beforeunload" question.

import { html, type TemplateResult } from "lit-html";
import { ApiError, type Api } from "../api/client";
import type { JtJob, JtJobOutput, JtModule, JtProject, JtStatus } from "../api/types";
import { setLeaveGuard } from "../router";
import { experimentNav } from "../ui/experimentnav";
import { dialogTemplate, MAX_JOBS, type Dialog } from "./dialogs";
import * as model from "./model";
import { modulesPane } from "./modules";
import { pipelinePane } from "./pipelinepane";
import { resultsPane } from "./results";
import { settingsPane } from "./settings";

/** How often the status of running debug jobs is asked for (ms). */
const POLL_MS = 1500;

interface RunState {
  status: JtStatus | null;
  outputs: JtJobOutput[] | null;
  error: string;
}

function messageOf(err: unknown): string {
  return err instanceof ApiError || err instanceof Error ? err.message : String(err);
}

export class PipelineScreen {
  name = "";
  project: JtProject | null = null;
  modules: JtModule[] | null = null;
  channels: string[] = [];
  /** the experiment's object types a pipeline can load (null until known) */
  objectTypes: string[] | null = null;
  jobs: JtJob[] | null = null;
  search = "";
  selected = -1;
  renaming: number | null = null;
  renameError = "";
  /** what is being done: "" (nothing), "save", "check", "run" or "kill" */
  busy = "";
  notice = "";
  error = "";
  loadError = "";
  /** the problems of the last refused save, check or run found here */
  localProblems: model.Problem[] = [];
  /** the place the server's last refusal names */
  serverFault: (model.Problem & { module: string }) | null = null;
  run: RunState | null = null;
  dialog: Dialog = null;
  private savedJson = "";
  private chosenJobs: number[] = [];
  private fieldTexts = new Map<string, string>();
  private pollTimer = 0;
  private disposed = false;
  private readonly onKey = (event: KeyboardEvent) => this.hotkey(event);
  private readonly onBeforeUnload = (event: BeforeUnloadEvent) => {
    if (!this.dirty()) return;
    event.preventDefault();
    event.returnValue = ""; // older browsers want it set to ask
  };
  private readonly removeGuard: () => void;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    private readonly changed: () => void,
  ) {
    document.addEventListener("keydown", this.onKey);
    window.addEventListener("beforeunload", this.onBeforeUnload);
    this.removeGuard = setLeaveGuard(() => this.confirmLeave());
    void this.load();
  }

  dispose(): void {
    this.disposed = true;
    document.removeEventListener("keydown", this.onKey);
    window.removeEventListener("beforeunload", this.onBeforeUnload);
    this.removeGuard();
    if (this.dialog?.kind === "leave") this.dialog.answer(false);
    window.clearTimeout(this.pollTimer);
  }

  private redraw(): void {
    if (!this.disposed) this.changed();
  }

  // ------------------------------------------------------------------ loading

  private async load(): Promise<void> {
    const e = this.experimentId;
    const tasks: Promise<void>[] = [
      this.api.experiment(e).then((x) => {
        this.name = x.name;
        document.title = `Pipeline · ${x.name} · TissueMAPS`;
      }),
      this.api.jtModules().then((m) => void (this.modules = m)),
      this.api.jtChannels(e).then((c) => void (this.channels = c)),
      this.api.jtObjectTypes(e).then((o) => void (this.objectTypes = o)),
      // the server's rules for immediate feedback: what piped inputs take, the module-name rule
      Promise.all([this.api.jtHandleTypes(), this.api.jtHandlesPathPattern()]).then(([types, pattern]) =>
        model.setServerRules(types, pattern),
      ),
      this.api.jtProject(e).then((p) => {
        this.project = model.normalise(p);
        this.savedJson = JSON.stringify(this.project);
        this.selected = this.project.pipeline.pipeline.length ? 0 : -1;
      }),
      this.api.jtJobList(e, 0, 1000).then((j) => void (this.jobs = j)),
    ];
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) this.loadError = `The pipeline editor could not load everything: ${messageOf(failed.reason)}`;
    this.redraw();
    await this.poll();
  }

  reload(): void {
    this.loadError = "";
    this.redraw();
    void this.load();
  }

  // ------------------------------------------------------------------ state read by the panes

  dirty(): boolean {
    return this.project !== null && JSON.stringify(this.project) !== this.savedJson;
  }

  running(): boolean {
    const status = this.run?.status;
    return !!status && status.state !== "TERMINATED";
  }

  selectedName(): string {
    const entry = this.project?.pipeline.pipeline[this.selected];
    return entry ? model.moduleName(entry) : "";
  }

  jobById(id: number): JtJob | undefined {
    return this.jobs?.find((j) => j.id === id);
  }

  /** Problems of a module found here (live) and the server's, if it named this module. */
  problemsOf(module: string): model.Problem[] {
    const found = this.project ? model.problems(this.project).filter((p) => p.module === module) : [];
    if (this.serverFault?.module === module) found.push(this.serverFault);
    return found;
  }

  faultyModules(): Set<string> {
    const names = new Set(this.project ? model.problems(this.project).map((p) => p.module) : []);
    if (this.serverFault) names.add(this.serverFault.module);
    names.delete("");
    return names;
  }

  fieldText(module: string, handle: string): string | undefined {
    return this.fieldTexts.get(`${module}/${handle}`);
  }

  moduleNamesForFigures(): string[] {
    return this.project ? this.project.pipeline.pipeline.filter((e) => e.active).map(model.moduleName) : [];
  }

  // ------------------------------------------------------------------ editing

  /** Applies a change of the project and forgets the messages about the old one. */
  private edit(change: (project: JtProject) => void): void {
    if (!this.project) return;
    change(this.project);
    this.notice = "";
    this.error = "";
    this.serverFault = null;
    this.localProblems = [];
    this.redraw();
  }

  setSearch(text: string): void {
    this.search = text;
    this.redraw();
  }

  select(index: number): void {
    const count = this.project?.pipeline.pipeline.length ?? 0;
    const next = count ? Math.max(0, Math.min(index, count - 1)) : -1;
    if (next !== this.selected) this.fieldTexts.clear();
    this.selected = next;
    this.redraw();
  }

  addModule(name: string, index?: number): void {
    const module = this.modules?.find((m) => m.name === name);
    if (!module || !this.project) return;
    const at = index ?? (this.selected >= 0 ? this.selected + 1 : this.project.pipeline.pipeline.length);
    this.edit((p) => {
      const added = model.addModule(p, module, at);
      this.selected = model.moduleNames(p).indexOf(added);
      this.fieldTexts.clear();
    });
  }

  move(from: number, to: number): void {
    const selectedName = this.selectedName();
    this.edit((p) => {
      model.moveModule(p, from, to);
      this.selected = model.moduleNames(p).indexOf(selectedName);
    });
  }

  remove(index: number): void {
    this.edit((p) => {
      model.removeModule(p, index);
      this.selected = Math.min(this.selected, p.pipeline.pipeline.length - 1);
      this.renaming = null;
    });
  }

  toggleActive(index: number): void {
    this.edit((p) => {
      const entry = p.pipeline.pipeline[index];
      if (entry) entry.active = !entry.active;
    });
  }

  startRename(index: number): void {
    this.renaming = index;
    this.renameError = "";
    this.redraw();
  }

  cancelRename(): void {
    this.renaming = null;
    this.renameError = "";
    this.redraw();
  }

  /** Renames a module; a refused name keeps the field open with the reason (`onBlur`: a refused
   * name is dropped when the field loses focus, the reason stays shown). */
  rename(index: number, name: string, onBlur = false): void {
    if (this.renaming !== index || !this.project) return;
    const problem = model.renameProblem(this.project, index, name.trim());
    const current = model.moduleNames(this.project)[index];
    if (name.trim() === current) {
      this.cancelRename();
      return;
    }
    if (problem) {
      this.renameError = problem;
      if (onBlur) {
        this.renaming = null;
        this.error = problem;
      }
      this.redraw();
      return;
    }
    this.renaming = null;
    this.renameError = "";
    this.edit((p) => void model.renameModule(p, index, name.trim()));
  }

  setConstant(module: string, handle: string, text: string): void {
    const h = this.project?.handles[module]?.input?.find((x) => x.name === handle);
    if (!h) return;
    this.fieldTexts.set(`${module}/${handle}`, text);
    const parsed = model.parseConstant(h, text);
    // a value that does not fit is kept as typed: the problems list names it until it is fixed
    this.edit(() => (h.value = "value" in parsed ? parsed.value : text));
  }

  setInputKey(module: string, handle: string, key: string): void {
    const h = this.project?.handles[module]?.input?.find((x) => x.name === handle);
    if (h) this.edit(() => (h.key = key));
  }

  setOutputKey(module: string, handle: string, key: string): void {
    this.edit((p) => model.setOutputKey(p, module, handle, key));
  }

  addChannel(name: string): void {
    this.edit((p) => model.channels(p).push({ name, correct: false }));
  }

  removeChannel(index: number): void {
    this.edit((p) => void model.channels(p).splice(index, 1));
  }

  setCorrect(index: number, on: boolean): void {
    this.edit((p) => (model.channels(p)[index].correct = on));
  }

  addOutput(name: string): void {
    this.edit((p) => model.outputObjects(p).push({ name, as_polygons: true }));
  }

  removeOutput(index: number): void {
    this.edit((p) => void model.outputObjects(p).splice(index, 1));
  }

  setPolygons(index: number, on: boolean): void {
    this.edit((p) => (model.outputObjects(p)[index].as_polygons = on));
  }

  addInputObject(name: string): void {
    this.edit((p) => model.addInputObject(p, name));
  }

  removeInputObject(index: number): void {
    this.edit((p) => model.removeInputObject(p, index));
  }

  // ------------------------------------------------------------------ leaving

  /** The router's leave guard: true at once without unsaved changes, else the user's answer. */
  private confirmLeave(): boolean | Promise<boolean> {
    if (!this.dirty()) return true;
    if (this.dialog?.kind === "leave") this.dialog.answer(false); // a second question replaces the first
    return new Promise<boolean>((resolve) => {
      let answered = false;
      const answer = (leave: boolean) => {
        if (answered) return;
        answered = true;
        if (this.dialog?.kind === "leave" && this.dialog.answer === answer) this.dialog = null;
        this.redraw();
        resolve(leave);
      };
      this.dialog = { kind: "leave", answer, error: "" };
      this.redraw();
    });
  }

  /** "Save and leave": leaves when the server stored the project, else stays with its message. */
  async saveAndLeave(): Promise<void> {
    const d = this.dialog;
    if (d?.kind !== "leave") return;
    await this.save();
    if (!this.dirty()) d.answer(true);
    else if (this.dialog === d) {
      d.error = this.error || "Not saved.";
      this.redraw();
    }
  }

  // ------------------------------------------------------------------ server actions

  /** The server refused: its message, and the module and handle it names marked. */
  private refused(prefix: string, err: unknown): void {
    const message = messageOf(err);
    this.error = `${prefix}: ${message}`;
    const place = model.placeOf(message, this.project ? model.moduleNames(this.project) : []);
    this.serverFault = place ? { ...place, message } : null;
    if (place) {
      const index = this.project ? model.moduleNames(this.project).indexOf(place.module) : -1;
      if (index >= 0) this.selected = index;
    }
  }

  /** Problems found here that stop a save or a run (shown in the pipeline pane). */
  private blocked(what: string): boolean {
    this.localProblems = this.project ? model.problems(this.project) : [];
    if (this.localProblems.length === 0) return false;
    this.notice = "";
    this.error = `${what}: the pipeline has ${this.localProblems.length} problem${this.localProblems.length === 1 ? "" : "s"}.`;
    const first = this.localProblems.find((p) => p.module);
    if (first && this.project) this.selected = model.moduleNames(this.project).indexOf(first.module);
    return true;
  }

  private async act(what: string, action: () => Promise<void>): Promise<void> {
    if (this.busy || !this.project) return;
    this.busy = what;
    this.notice = "";
    this.error = "";
    this.serverFault = null;
    this.redraw();
    try {
      await action();
    } finally {
      this.busy = "";
      this.redraw();
    }
  }

  async save(): Promise<void> {
    await this.act("save", async () => {
      if (this.blocked("Not saved")) return;
      const project = this.project as JtProject;
      const json = JSON.stringify(project);
      try {
        await this.api.saveJtProject(this.experimentId, project);
        this.savedJson = json;
        this.notice = "Saved.";
      } catch (err) {
        this.refused("Not saved", err);
      }
    });
  }

  async check(): Promise<void> {
    await this.act("check", async () => {
      // the server's check is the one that counts; what is found here is listed as well
      this.localProblems = model.problems(this.project as JtProject);
      try {
        await this.api.checkJtProject(this.experimentId, this.project as JtProject);
        this.notice = this.localProblems.length
          ? "The server's check passed, but see the problems below."
          : "The pipeline passed the check.";
      } catch (err) {
        this.refused("Check failed", err);
      }
    });
  }

  openJobs(): void {
    if (!this.project) return;
    if (this.chosenJobs.length === 0 && this.jobs?.length) this.chosenJobs = [this.jobs[0].id];
    this.dialog = { kind: "jobs", chosen: [...this.chosenJobs], error: "" };
    this.redraw();
    if (this.jobs === null) {
      this.api
        .jtJobList(this.experimentId, 0, 1000)
        .then((jobs) => {
          this.jobs = jobs;
          if (this.dialog?.kind === "jobs" && this.dialog.chosen.length === 0 && jobs.length) {
            this.dialog.chosen = [jobs[0].id];
          }
        })
        .catch((err) => {
          if (this.dialog?.kind === "jobs") this.dialog.error = messageOf(err);
        })
        .finally(() => this.redraw());
    }
  }

  chooseJob(id: number, on: boolean): void {
    const d = this.dialog;
    if (d?.kind !== "jobs") return;
    d.chosen = on ? [...new Set([...d.chosen, id])].slice(0, MAX_JOBS) : d.chosen.filter((x) => x !== id);
    this.redraw();
  }

  async runJobs(): Promise<void> {
    const d = this.dialog;
    if (d?.kind !== "jobs" || d.chosen.length === 0) return;
    if (this.blocked("Not run")) {
      d.error = `${this.error} See the pipeline settings.`;
      this.redraw();
      return;
    }
    const chosen = [...d.chosen].sort((a, b) => a - b);
    await this.act("run", async () => {
      const project = this.project as JtProject;
      const json = JSON.stringify(project);
      try {
        await this.api.runJtJobs(this.experimentId, chosen, project);
      } catch (err) {
        this.refused("Not run", err);
        d.error = this.error;
        return;
      }
      this.savedJson = json;
      this.chosenJobs = chosen;
      this.dialog = null;
      this.notice = `Saved; running the pipeline on ${chosen.length} site${chosen.length === 1 ? "" : "s"}…`;
      this.run = { status: null, outputs: null, error: "" };
    });
    if (this.run && this.run.status === null) await this.poll();
  }

  async kill(): Promise<void> {
    await this.act("kill", async () => {
      try {
        await this.api.killJtJobs(this.experimentId);
        this.notice = "The jobs were stopped.";
      } catch (err) {
        this.error = `Not stopped: ${messageOf(err)}`;
      }
    });
    await this.poll();
  }

  /** Asks for the debug jobs' status until they end, then for their output. */
  private async poll(): Promise<void> {
    window.clearTimeout(this.pollTimer);
    if (this.disposed) return;
    let status: JtStatus | null;
    try {
      status = await this.api.jtJobStatus(this.experimentId);
    } catch (err) {
      if (this.run) this.run.error = `No status: ${messageOf(err)} Trying again…`;
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS * 4);
      this.redraw();
      return;
    }
    if (status === null) {
      this.redraw();
      return;
    }
    const run: RunState = this.run ?? { status: null, outputs: null, error: "" };
    this.run = run;
    run.status = status;
    run.error = "";
    if (status.state !== "TERMINATED") {
      this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
    } else {
      try {
        run.outputs = await this.api.jtJobOutput(this.experimentId);
        const failed = run.outputs.filter((o) => o.failed).map((o) => o.id);
        if (failed.length) {
          run.error = `Job${failed.length === 1 ? "" : "s"} ${failed.join(", ")} failed: see the log.`;
        }
        if (this.notice.startsWith("Saved; running")) this.notice = "The jobs have finished.";
      } catch (err) {
        run.error = `No output: ${messageOf(err)}`;
      }
    }
    this.redraw();
  }

  // ------------------------------------------------------------------ dialogs

  closeDialog(): void {
    const d = this.dialog;
    if (d?.kind === "jobs") this.chosenJobs = d.chosen;
    this.dialog = null;
    if (d?.kind === "leave") d.answer(false); // closed: stay
    this.redraw();
  }

  showSource(module: string): void {
    const dialog: Dialog = { kind: "source", module, text: null, error: "" };
    this.dialog = dialog;
    this.redraw();
    this.api
      .jtModuleSource(module)
      .then((text) => (dialog.text = text))
      .catch((err) => (dialog.error = messageOf(err)))
      .finally(() => this.redraw());
  }

  showFigure(jobId: number, module: string): void {
    if (!module) return;
    const dialog: Dialog = { kind: "figure", jobId, module, figure: null, error: "" };
    this.dialog = dialog;
    this.redraw();
    this.api
      .jtFigure(this.experimentId, module, jobId)
      .then((figure) => (dialog.figure = figure))
      .catch((err) => (dialog.error = messageOf(err)))
      .finally(() => this.redraw());
  }

  showLog(output: JtJobOutput): void {
    this.dialog = { kind: "log", output };
    this.redraw();
  }

  // ------------------------------------------------------------------ hotkeys

  private hotkey(event: KeyboardEvent): void {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    // Escape closes a dialog wherever the focus is (the dialog's own handler needs it inside)
    if (event.key === "Escape" && this.dialog !== null) {
      this.closeDialog();
      return;
    }
    const target = event.target as HTMLElement | null;
    if (target?.closest?.("input, textarea, select, [contenteditable='true']")) return;
    if (this.dialog !== null || this.project === null) return;
    const actions: Record<string, () => void> = {
      s: () => void this.save(),
      c: () => void this.check(),
      r: () => {
        if (!this.running()) this.openJobs();
      },
      j: () => this.select(this.selected + 1),
      ArrowDown: () => this.select(this.selected + 1),
      k: () => this.select(this.selected - 1),
      ArrowUp: () => this.select(this.selected - 1),
    };
    const action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  // ------------------------------------------------------------------ drawing

  template(): TemplateResult {
    return html`${experimentNav(this.experimentId, "pipeline", this.name)}
      <main class="jt-editor" data-testid="pipeline-editor">
        ${this.loadError
          ? html`<p class="error jt-load-error" role="alert" data-testid="load-error">
              ${this.loadError} <button @click=${() => this.reload()}>Try again</button>
            </p>`
          : ""}
        <div class="jt-panes">
          ${modulesPane(this)} ${pipelinePane(this)} ${settingsPane(this)} ${resultsPane(this)}
        </div>
        ${dialogTemplate(this)}
      </main>`;
  }
}
