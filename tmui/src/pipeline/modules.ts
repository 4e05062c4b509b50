// The "Available modules" pane: search, drag into the pipeline or add, and the module's source.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { PipelineScreen } from "./pipeline";

/** The drag data type of a module from this list (its name). */
export const MODULE_DRAG = "application/x-tm-jtmodule";

export function modulesPane(screen: PipelineScreen): TemplateResult {
  const needle = screen.search.trim().toLowerCase();
  const modules = (screen.modules ?? []).filter((m) => m.name.toLowerCase().includes(needle));
  return html`<section class="jt-pane jt-modules" data-testid="available-modules">
    <h3>Available modules</h3>
    <input
      type="search"
      placeholder="Search modules"
      data-testid="module-search"
      .value=${live(screen.search)}
      @input=${(e: InputEvent) => screen.setSearch((e.target as HTMLInputElement).value)}
    />
    ${screen.modules === null
      ? html`<p class="muted">Loading…</p>`
      : modules.length === 0
        ? html`<p class="muted">No module matches.</p>`
        : nothing}
    <ul class="jt-list">
      ${modules.map(
        (m) => html`<li
          class="jt-available"
          draggable="true"
          data-testid="available-module"
          data-name=${m.name}
          title="Drag into the pipeline"
          @dragstart=${(e: DragEvent) => {
            e.dataTransfer?.setData(MODULE_DRAG, m.name);
            if (e.dataTransfer) e.dataTransfer.effectAllowed = "copy";
          }}
        >
          <span class="name">${m.name}</span>
          <button class="icon" title="Show the source of ${m.name}" data-testid="module-source"
            @click=${() => screen.showSource(m.name)}>?</button>
          <button class="icon" title="Add ${m.name} after the selected module" data-testid="add-module"
            @click=${() => screen.addModule(m.name)}>+</button>
        </li>`,
      )}
    </ul>
  </section>`;
}
