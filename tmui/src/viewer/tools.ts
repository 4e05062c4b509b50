// Tool windows: one per tool of /api/tools. Each builds its request from the object type,
// features and selections, submits it, shows a spinner while the job runs and then either
// the error or the new result (handed to the results layer list).

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { MapobjectType, Tool, ToolResult } from "../api/types";
import type { ViewerContext } from "./context";
import type { Selections } from "./selections";

const POLL_MS = 1000;

interface WindowState {
  tool: Tool;
  open: boolean;
  features: Set<string>;
  search: string;
  method: string;
  folds: number;
  k: number;
  classes: Map<string, { use: boolean; label: string }>;
  running: boolean;
  error: string;
  message: string;
}

export class Tools {
  private windows: WindowState[] = [];
  error = "";

  constructor(
    private readonly context: ViewerContext,
    private readonly types: MapobjectType[],
    private readonly selections: Selections,
    private readonly onResult: (result: ToolResult) => void,
  ) {}

  async load(): Promise<void> {
    try {
      const tools = await this.context.api.tools();
      this.windows = tools.map((tool) => ({
        tool, open: false, features: new Set(), search: "", method: tool.methods[0] ?? "",
        folds: 5, k: 2, classes: new Map(), running: false, error: "", message: "",
      }));
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  private type(): MapobjectType | undefined {
    return this.types.find((t) => t.id === this.selections.activeTypeId);
  }

  buttons(): TemplateResult {
    return html`<nav class="toolbar-vertical" data-testid="tool-bar">
      ${this.windows.map(
        (w) => html`<button class="tool ${w.open ? "active" : ""}" title=${`${w.tool.name}: ${w.tool.description}`}
          data-testid="tool-button" data-tool=${w.tool.name}
          @click=${() => {
            w.open = !w.open;
            this.context.changed();
          }}>${w.tool.icon}${w.running ? html`<span class="spinner small"></span>` : nothing}</button>`,
      )}
      ${this.error ? html`<span class="error" title=${this.error}>!</span>` : nothing}
    </nav>`;
  }

  windowsTemplate(): TemplateResult {
    return html`${this.windows.filter((w) => w.open).map((w) => this.window(w))}`;
  }

  private payload(w: WindowState, type: MapobjectType): unknown {
    const features = [...w.features];
    if (w.tool.name === "Heatmap") return { chosen_object_type: type.name, selected_feature: features[0] };
    if (w.tool.name === "Clustering") {
      return { chosen_object_type: type.name, selected_features: features, options: { method: w.method, k: w.k } };
    }
    const classes = this.selections.ofType(type.id)
      .filter((s) => this.classOf(w, s.selection.id, 0).use)
      .map((s, i) => ({
        name: this.classOf(w, s.selection.id, i).label,
        color: s.selection.color,
        object_ids: [...s.members.keys()],
      }));
    return {
      chosen_object_type: type.name,
      selected_features: features,
      training_classes: classes,
      options: { method: w.method, n_fold_cv: w.folds },
    };
  }

  private classOf(w: WindowState, selectionId: string, index: number): { use: boolean; label: string } {
    let entry = w.classes.get(selectionId);
    if (!entry) {
      entry = { use: true, label: `Class_${index}` };
      w.classes.set(selectionId, entry);
    }
    return entry;
  }

  private async submit(w: WindowState): Promise<void> {
    const type = this.type();
    if (!type) return;
    const { api, experimentId } = this.context;
    w.running = true;
    w.error = "";
    w.message = "";
    this.context.changed();
    try {
      const submissionId = await api.requestTool(experimentId, w.tool.name, this.payload(w, type));
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        const [job] = await api.toolJobs(experimentId, { submissionId });
        if (job && job.state === "TERMINATED") {
          if (job.exitcode !== 0) {
            const log = await api.toolJobLog(experimentId, job.id).catch(() => "");
            throw new Error(`The job failed: ${failureLine(log) ?? `exit code ${job.exitcode}`}`);
          }
          break;
        }
      }
      const [result] = await api.toolResults(experimentId, submissionId);
      if (!result) throw new Error("The job ended without a result.");
      w.message = `Done: result "${result.name}".`;
      this.onResult(result);
    } catch (err) {
      w.error = err instanceof Error ? err.message : String(err);
    } finally {
      w.running = false;
      this.context.changed();
    }
  }

  private window(w: WindowState): TemplateResult {
    const type = this.type();
    const single = w.tool.name === "Heatmap";
    const features = type?.features ?? [];
    const needle = w.search.toLowerCase();
    const shown = features.filter((f) => f.name.toLowerCase().includes(needle));
    const selections = type ? this.selections.ofType(type.id) : [];
    const ready =
      !!type && w.features.size > 0 && !w.running &&
      (w.tool.name !== "Classification" ||
        selections.filter((s, i) => this.classOf(w, s.selection.id, i).use && s.members.size > 0).length >= 2);
    return html`<div class="tool-window" data-testid="tool-window" data-tool=${w.tool.name}>
      <header>
        <h3>${w.tool.name}</h3>
        ${w.running ? html`<span class="spinner" data-testid="tool-spinner"></span>` : nothing}
        <button class="icon" title="Close" @click=${() => {
          w.open = false;
          this.context.changed();
        }}>&times;</button>
      </header>
      <p class="muted">${w.tool.description}</p>
      <label>Object type
        <select data-testid="tool-type" @change=${(e: Event) => {
          this.selections.activeTypeId = (e.target as HTMLSelectElement).value;
          w.features.clear();
          this.context.changed();
        }}>
          ${this.types.map((t) => html`<option value=${t.id} ?selected=${t.id === type?.id}>${t.name}</option>`)}
        </select>
      </label>
      ${w.tool.methods.length > 1
        ? html`<label>Method
            <select data-testid="tool-method" @change=${(e: Event) => (w.method = (e.target as HTMLSelectElement).value)}>
              ${w.tool.methods.map((m) => html`<option ?selected=${m === w.method}>${m}</option>`)}
            </select></label>`
        : nothing}
      <fieldset class="features">
        <legend>${single ? "Feature" : `Features (${w.features.size} of ${features.length})`}</legend>
        <div class="row">
          <input type="search" placeholder="Search features" data-testid="feature-search"
            .value=${live(w.search)} @input=${(e: Event) => {
              w.search = (e.target as HTMLInputElement).value;
              this.context.changed();
            }} />
          ${single ? nothing : html`<button data-testid="select-all-features" @click=${() => {
              for (const f of shown) w.features.add(f.name);
              this.context.changed();
            }}>All</button>
            <button @click=${() => {
              w.features.clear();
              this.context.changed();
            }}>Clear</button>`}
        </div>
        <ul class="feature-list">
          ${shown.map((f) => html`<li class=${w.features.has(f.name) ? "chosen" : ""} data-testid="feature-item"
            @click=${() => {
              if (single) w.features.clear();
              if (w.features.has(f.name)) w.features.delete(f.name);
              else w.features.add(f.name);
              this.context.changed();
            }}>${f.name}</li>`)}
        </ul>
      </fieldset>
      ${w.tool.name === "Classification"
        ? html`<table class="classes" data-testid="class-table">
              <thead><tr><th>Use?</th><th>Selection</th><th>Class</th><th>Objects</th></tr></thead>
              <tbody>
                ${selections.map((s, i) => {
                  const entry = this.classOf(w, s.selection.id, i);
                  return html`<tr>
                    <td><input type="checkbox" .checked=${live(entry.use)} @change=${() => {
                      entry.use = !entry.use;
                      this.context.changed();
                    }} /></td>
                    <td><span class="flag" style="background:${s.selection.color}"></span>${s.selection.name}</td>
                    <td><input class="inline" .value=${live(entry.label)}
                      @input=${(e: Event) => (entry.label = (e.target as HTMLInputElement).value)} /></td>
                    <td>${s.members.size}</td>
                  </tr>`;
                })}
              </tbody>
            </table>
            ${selections.length < 2 ? html`<p class="hint">Make two or more selections of this type: each is a class.</p>` : nothing}
            <label class="compact">Cross-validation folds
              <input type="number" class="num" min="2" max="100" .value=${live(String(w.folds))}
                @change=${(e: Event) => (w.folds = Number((e.target as HTMLInputElement).value))} /></label>`
        : nothing}
      ${w.tool.name === "Clustering"
        ? html`<label class="compact">Number of clusters (k)
            <input type="number" class="num" min="2" data-testid="cluster-k" .value=${live(String(w.k))}
              @change=${(e: Event) => (w.k = Number((e.target as HTMLInputElement).value))} /></label>`
        : nothing}
      <footer>
        <button class="primary" data-testid="tool-submit" ?disabled=${!ready} @click=${() => void this.submit(w)}>
          ${w.running ? "Running…" : "Submit"}
        </button>
      </footer>
      ${w.error ? html`<p class="error" role="alert" data-testid="tool-error">${w.error}</p>` : nothing}
      ${w.message ? html`<p class="notice" data-testid="tool-message">${w.message}</p>` : nothing}
    </div>`;
  }
}

/** The line of a job's log that says why it failed (the last one naming an error). */
export function failureLine(log: string): string | undefined {
  const lines = log.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("(run with"));
  return [...lines].reverse().find((l) => /error/i.test(l)) ?? lines.pop();
}
