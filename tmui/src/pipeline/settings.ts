// The "Module settings" pane: the selected module's constant inputs as typed fields or choices,
// its piped inputs as choices of upstream outputs of a matching type, and its output names.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { JtHandle, JtProject } from "../api/types";
import { constantText, handlesOf, isNamedOutput, isPipe, moduleName, pipeChoices, type Problem } from "./model";
import type { PipelineScreen } from "./pipeline";

function messages(problems: Problem[], handle: string): TemplateResult | typeof nothing {
  const mine = problems.filter((p) => p.handle === handle);
  return mine.length
    ? html`${mine.map((p) => html`<span class="error jt-field-error" role="alert" data-testid="handle-error">${p.message}</span>`)}`
    : nothing;
}

function pipedInput(screen: PipelineScreen, project: JtProject, index: number, module: string, h: JtHandle): TemplateResult {
  const choices = pipeChoices(project, index, h);
  const known = choices.some((c) => c.key === h.key);
  return html`<select
    data-testid="input-${h.name}"
    data-handle=${h.name}
    class=${known ? "" : "invalid"}
    @change=${(e: Event) => screen.setInputKey(module, h.name, (e.target as HTMLSelectElement).value)}
  >
    ${known ? nothing : html`<option value=${h.key ?? ""} selected>${h.key ? `${h.key} (not available)` : "— choose —"}</option>`}
    ${choices.map(
      (c) => html`<option value=${c.key} ?selected=${c.key === h.key}>${c.key}${c.input ? ` (${c.input === "channel" ? "channel" : "input objects"})` : ""}</option>`,
    )}
  </select>`;
}

function constantInput(screen: PipelineScreen, module: string, h: JtHandle): TemplateResult {
  const set = (text: string) => screen.setConstant(module, h.name, text);
  if (Array.isArray(h.options) && h.options.length) {
    return html`<select data-testid="input-${h.name}" data-handle=${h.name}
      @change=${(e: Event) => set((e.target as HTMLSelectElement).value)}>
      ${h.options.map((o) => html`<option value=${String(o)} ?selected=${String(o) === String(h.value)}>${String(o)}</option>`)}
    </select>`;
  }
  if (h.type === "Boolean" || h.type === "Plot") {
    return html`<select data-testid="input-${h.name}" data-handle=${h.name}
      @change=${(e: Event) => set((e.target as HTMLSelectElement).value)}>
      <option value="true" ?selected=${h.value === true}>true</option>
      <option value="false" ?selected=${h.value !== true}>false</option>
    </select>`;
  }
  const numeric = h.type === "Numeric";
  return html`<input
    type=${numeric ? "number" : "text"}
    step=${numeric ? "any" : nothing}
    data-testid="input-${h.name}"
    data-handle=${h.name}
    placeholder=${h.type === "Sequence" || h.type === "Set" ? "a, b, c" : ""}
    .value=${live(screen.fieldText(module, h.name) ?? constantText(h.value))}
    @input=${(e: InputEvent) => set((e.target as HTMLInputElement).value)}
  />`;
}

export function settingsPane(screen: PipelineScreen): TemplateResult {
  const project = screen.project;
  const index = screen.selected;
  const entry = project?.pipeline.pipeline[index];
  if (!project || !entry) {
    return html`<section class="jt-pane jt-settings" data-testid="module-settings">
      <h3>Module settings</h3>
      <p class="muted">Select a module of the pipeline, or add one from the list.</p>
    </section>`;
  }
  const module = moduleName(entry);
  const handles = handlesOf(project, index);
  const problems = screen.problemsOf(module);
  const inputs = handles.input ?? [];
  const outputs = (handles.output ?? []).filter(isNamedOutput);
  return html`<section class="jt-pane jt-settings" data-testid="module-settings" data-module=${module}>
    <h3>Module settings</h3>
    <div class="jt-settings-head">
      <b data-testid="settings-name">${module}</b>
      <span class="muted">${entry.source}${handles.version ? ` · version ${handles.version}` : ""}</span>
      ${entry.active ? nothing : html`<span class="muted">(inactive)</span>`}
    </div>
    ${problems
      .filter((p) => !p.handle)
      .map((p) => html`<p class="error" role="alert" data-testid="module-error">${p.message}</p>`)}
    <h4>Inputs</h4>
    <table class="jt-handles">
      <tbody>
        ${inputs.map(
          (h) => html`<tr data-testid="input-handle" data-handle=${h.name}>
            <th title=${h.help ?? ""}>${h.name}<div class="hint">${h.type}</div></th>
            <td>
              ${isPipe(h) ? pipedInput(screen, project, index, module, h) : constantInput(screen, module, h)}
              ${h.help ? html`<div class="hint">${h.help}</div>` : nothing}
              ${messages(problems, h.name)}
            </td>
          </tr>`,
        )}
      </tbody>
    </table>
    <h4>Outputs</h4>
    ${outputs.length === 0 ? html`<p class="muted">No named outputs.</p>` : nothing}
    <table class="jt-handles">
      <tbody>
        ${outputs.map(
          (h) => html`<tr data-testid="output-handle" data-handle=${h.name}>
            <th title=${h.help ?? ""}>${h.name}<div class="hint">${h.type}</div></th>
            <td>
              <input
                type="text"
                data-testid="output-${h.name}"
                data-handle=${h.name}
                .value=${live(h.key ?? "")}
                @change=${(e: Event) => screen.setOutputKey(module, h.name, (e.target as HTMLInputElement).value.trim())}
              />
              ${h.help ? html`<div class="hint">${h.help}</div>` : nothing}
              ${messages(problems, h.name)}
            </td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}
