// The "Pipeline settings" pane: input channels, the sortable module list (also the drop target
// of available modules), output object types, and Save / Check / Run / Kill.

import { html, nothing, type TemplateResult } from "lit-html";
import type { JtProject } from "../api/types";
import { trashIcon } from "../ui/icons";
import { focusOnce } from "./dialogs";
import { channels, inputObjects, moduleName, outputObjects, registeredObjects } from "./model";
import { MODULE_DRAG } from "./modules";
import type { PipelineScreen } from "./pipeline";

/** The drag data type of a module of the pipeline (its index). */
const ROW_DRAG = "application/x-tm-jtrow";

/** Where a drop on the list puts a module: before the row under the pointer, or after it. */
function dropIndex(event: DragEvent, count: number): number {
  const row = (event.target as HTMLElement).closest<HTMLElement>("li[data-index]");
  if (!row) return count;
  const box = row.getBoundingClientRect();
  const index = Number(row.dataset.index);
  return event.clientY > box.top + box.height / 2 ? index + 1 : index;
}

function channelSection(screen: PipelineScreen, project: JtProject): TemplateResult {
  const used = new Set(channels(project).map((c) => c.name));
  const free = screen.channels.filter((c) => !used.has(c));
  return html`<div class="jt-block" data-testid="input-channels">
    <h4>Input channels</h4>
    <ul class="jt-list">
      ${channels(project).map(
        (c, i) => html`<li data-testid="input-channel" data-name=${c.name}>
          <span class="name">${c.name}</span>
          <label class="compact" title="Correct illumination (needs the illumination statistics)">
            <input type="checkbox" data-testid="correct-illumination" .checked=${c.correct}
              @change=${(e: Event) => screen.setCorrect(i, (e.target as HTMLInputElement).checked)} />
            correct illumination
          </label>
          <button class="icon" title="Remove channel ${c.name}" data-testid="remove-channel"
            @click=${() => screen.removeChannel(i)}>${trashIcon}</button>
        </li>`,
      )}
    </ul>
    <div class="row">
      <select data-testid="channel-choice" ?disabled=${free.length === 0}>
        ${free.map((c) => html`<option>${c}</option>`)}
      </select>
      <button data-testid="add-channel" ?disabled=${free.length === 0}
        @click=${(e: Event) => {
          const select = (e.target as HTMLElement).parentElement?.querySelector("select");
          if (select?.value) screen.addChannel(select.value);
        }}>Add</button>
      <button data-testid="list-jobs" @click=${() => screen.openJobs()}>List jobs</button>
    </div>
  </div>`;
}

/** Object types of the experiment (segmented by an earlier pipeline or uploaded) that the
 * pipeline loads per site as label images, for piped inputs that take labels or objects. */
function objectsSection(screen: PipelineScreen, project: JtProject): TemplateResult {
  const used = inputObjects(project);
  const free = (screen.objectTypes ?? []).filter((name) => !used.includes(name));
  const known = new Set(screen.objectTypes ?? []);
  return html`<div class="jt-block" data-testid="input-objects">
    <h4>Input objects</h4>
    ${used.length === 0 && screen.objectTypes?.length === 0
      ? html`<p class="muted">The experiment has no object types yet.</p>`
      : nothing}
    <ul class="jt-list">
      ${used.map(
        (name, i) => html`<li data-testid="input-object" data-name=${name}>
          <span class="name">${name}</span>
          ${screen.objectTypes !== null && !known.has(name)
            ? html`<span class="error" data-testid="input-object-missing">not an object type of the experiment</span>`
            : nothing}
          <button class="icon" title="Do not load ${name}" data-testid="remove-input-object"
            @click=${() => screen.removeInputObject(i)}>${trashIcon}</button>
        </li>`,
      )}
    </ul>
    <div class="row">
      <select data-testid="input-object-choice" ?disabled=${free.length === 0}
        title="Object types of the experiment; modules that take a label image or objects can use them">
        ${free.map((name) => html`<option>${name}</option>`)}
      </select>
      <button data-testid="add-input-object" ?disabled=${free.length === 0}
        @click=${(e: Event) => {
          const select = (e.target as HTMLElement).parentElement?.querySelector("select");
          if (select?.value) screen.addInputObject(select.value);
        }}>Add</button>
    </div>
  </div>`;
}

function moduleRow(screen: PipelineScreen, project: JtProject, index: number): TemplateResult {
  const entry = project.pipeline.pipeline[index];
  const name = moduleName(entry);
  const count = project.pipeline.pipeline.length;
  const faulty = screen.faultyModules().has(name);
  const classes = [
    "jt-row",
    index === screen.selected ? "selected" : "",
    entry.active ? "" : "inactive",
    faulty ? "fault" : "",
  ].join(" ");
  const renaming = screen.renaming === index;
  return html`<li
    class=${classes}
    data-index=${index}
    data-testid="pipeline-module"
    data-name=${name}
    draggable=${renaming ? "false" : "true"}
    @dragstart=${(e: DragEvent) => {
      e.dataTransfer?.setData(ROW_DRAG, String(index));
      if (e.dataTransfer) e.dataTransfer.effectAllowed = "move";
    }}
    @click=${() => screen.select(index)}
  >
    <span class="jt-index">${index + 1}</span>
    <button class="icon" data-testid="toggle-active" title=${entry.active ? "Deactivate" : "Activate"}
      aria-pressed=${entry.active ? "true" : "false"}
      @click=${(e: Event) => {
        e.stopPropagation();
        screen.toggleActive(index);
      }}>${entry.active ? "●" : "○"}</button>
    ${renaming
      ? html`<input
          class="inline jt-rename"
          data-testid="rename-module-input"
          .value=${name}
          ${focusOnce}
          @click=${(e: Event) => e.stopPropagation()}
          @keydown=${(e: KeyboardEvent) => {
            if (e.key === "Enter") screen.rename(index, (e.target as HTMLInputElement).value);
            if (e.key === "Escape") screen.cancelRename();
          }}
          @blur=${(e: FocusEvent) => screen.rename(index, (e.target as HTMLInputElement).value, true)}
        />`
      : html`<span class="name" title="${name} (${entry.source}); double-click to rename"
          @dblclick=${() => screen.startRename(index)}>${name}</span>`}
    <span class="jt-row-actions">
      <button class="icon" title="Rename" data-testid="rename-module"
        @click=${(e: Event) => {
          e.stopPropagation();
          screen.startRename(index);
        }}>✎</button>
      <button class="icon" title="Move up" data-testid="move-up" ?disabled=${index === 0}
        @click=${(e: Event) => {
          e.stopPropagation();
          screen.move(index, index - 1);
        }}>↑</button>
      <button class="icon" title="Move down" data-testid="move-down" ?disabled=${index === count - 1}
        @click=${(e: Event) => {
          e.stopPropagation();
          screen.move(index, index + 1);
        }}>↓</button>
      <button class="icon" title="Remove" data-testid="remove-module"
        @click=${(e: Event) => {
          e.stopPropagation();
          screen.remove(index);
        }}>${trashIcon}</button>
    </span>
    ${renaming && screen.renameError
      ? html`<p class="error jt-rename-error" role="alert" data-testid="rename-error">${screen.renameError}</p>`
      : nothing}
  </li>`;
}

function outputSection(screen: PipelineScreen, project: JtProject): TemplateResult {
  const outputs = outputObjects(project);
  const chosen = new Set(outputs.map((o) => o.name));
  const free = registeredObjects(project).filter((name) => !chosen.has(name));
  return html`<div class="jt-block" data-testid="output-objects">
    <h4>Output objects</h4>
    <ul class="jt-list">
      ${outputs.map(
        (o, i) => html`<li data-testid="output-object" data-name=${o.name}>
          <span class="name">${o.name}</span>
          <label class="compact">
            <input type="checkbox" data-testid="as-polygons" .checked=${o.as_polygons}
              @change=${(e: Event) => screen.setPolygons(i, (e.target as HTMLInputElement).checked)} />
            represent as polygons
          </label>
          <button class="icon" title="Do not save ${o.name}" data-testid="remove-output"
            @click=${() => screen.removeOutput(i)}>${trashIcon}</button>
        </li>`,
      )}
    </ul>
    <div class="row">
      <select data-testid="output-choice" ?disabled=${free.length === 0}>
        ${free.map((name) => html`<option>${name}</option>`)}
      </select>
      <button data-testid="add-output" ?disabled=${free.length === 0}
        @click=${(e: Event) => {
          const select = (e.target as HTMLElement).parentElement?.querySelector("select");
          if (select?.value) screen.addOutput(select.value);
        }}>Add</button>
    </div>
  </div>`;
}

export function pipelinePane(screen: PipelineScreen): TemplateResult {
  const project = screen.project;
  if (project === null) {
    return html`<section class="jt-pane jt-pipeline"><h3>Pipeline settings</h3>
      ${screen.loadError ? nothing : html`<p class="muted">Loading…</p>`}</section>`;
  }
  const entries = project.pipeline.pipeline;
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    (e.currentTarget as HTMLElement).classList.remove("drag-over");
    const at = dropIndex(e, entries.length);
    const module = e.dataTransfer?.getData(MODULE_DRAG);
    const row = e.dataTransfer?.getData(ROW_DRAG);
    if (module) screen.addModule(module, at);
    else if (row) {
      const from = Number(row);
      screen.move(from, at > from ? at - 1 : at);
    }
  };
  const busy = screen.busy !== "";
  return html`<section class="jt-pane jt-pipeline" data-testid="pipeline-settings">
    <h3>Pipeline settings ${screen.dirty() ? html`<span class="jt-dirty" data-testid="unsaved">unsaved changes</span>` : nothing}</h3>
    <div class="row jt-actions">
      <button class="primary" data-testid="save" ?disabled=${busy} title="Save (s)" @click=${() => void screen.save()}>Save</button>
      <button data-testid="check" ?disabled=${busy} title="Check (c)" @click=${() => void screen.check()}>Check</button>
      <button data-testid="run" ?disabled=${busy || screen.running()} title="Run on chosen sites (r)"
        @click=${() => screen.openJobs()}>Run…</button>
      <button class="danger" data-testid="kill" ?disabled=${!screen.running()} title="Stop the running jobs"
        @click=${() => void screen.kill()}>Kill</button>
      ${busy ? html`<span class="spinner"></span>` : nothing}
    </div>
    ${screen.notice ? html`<p class="notice" role="status" data-testid="pipeline-notice">${screen.notice}</p>` : nothing}
    ${screen.error
      ? html`<p class="error" role="alert" data-testid="pipeline-error">${screen.error}</p>`
      : nothing}
    ${screen.localProblems.length
      ? html`<ul class="error jt-problems" data-testid="pipeline-problems">
          ${screen.localProblems.map(
            (p) => html`<li>${p.module ? `module ${p.module}${p.handle ? `, handle ${p.handle}` : ""}: ` : ""}${p.message}</li>`,
          )}
        </ul>`
      : nothing}
    ${channelSection(screen, project)} ${objectsSection(screen, project)}
    <div class="jt-block">
      <h4>Modules</h4>
      <ol
        class="jt-list jt-pipeline-list"
        data-testid="pipeline-list"
        @dragover=${(e: DragEvent) => {
          e.preventDefault();
          (e.currentTarget as HTMLElement).classList.add("drag-over");
        }}
        @dragleave=${(e: DragEvent) => (e.currentTarget as HTMLElement).classList.remove("drag-over")}
        @drop=${onDrop}
      >
        ${entries.map((_, i) => moduleRow(screen, project, i))}
        <li class="jt-drop-hint muted" data-testid="drop-hint">Drop modules here</li>
      </ol>
    </div>
    ${outputSection(screen, project)}
    <p class="hint">Hotkeys: <kbd>s</kbd> save, <kbd>c</kbd> check, <kbd>r</kbd> run, <kbd>j</kbd>/<kbd>k</kbd> or
      <kbd>↓</kbd>/<kbd>↑</kbd> next/previous module.</p>
  </section>`;
}
