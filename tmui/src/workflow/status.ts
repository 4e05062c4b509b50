// State icons, progress bars and the stage and step tabs of the workflow manager.

import { html, nothing, svg, type SVGTemplateResult, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { WorkflowStatus } from "../api/types";
import { gearIcon } from "../ui/icons";
import { label, type NodeState } from "./model";

function glyph(path: SVGTemplateResult): SVGTemplateResult {
  return svg`<svg class="svg-icon" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"
    fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${path}</svg>`;
}

const checkIcon = glyph(svg`<path d="M3 8.5 6.5 12 13 4.5"/>`);
const failedIcon = glyph(svg`<circle cx="8" cy="8" r="6"/><path d="M8 4.5v4.2M8 11.2v.1"/>`);
const missingIcon = glyph(svg`<circle cx="8" cy="8" r="6"/><path d="M5 8h6"/>`);

const TITLES: Record<NodeState, string> = {
  done: "done",
  failed: "a job failed",
  running: "running",
  submitted: "submitted",
  missing: "a required argument is missing",
  idle: "",
};

/** The icon of a state: check, exclamation, cog, spinning cog, minus-circle. */
export function stateIcon(state: NodeState): TemplateResult | typeof nothing {
  if (state === "idle") return nothing;
  const icon =
    state === "done"
      ? checkIcon
      : state === "failed"
        ? failedIcon
        : state === "missing"
          ? missingIcon
          : gearIcon;
  return html`<span class="wf-icon ${state}" title=${TITLES[state]} data-state=${state}
    >${icon}</span
  >`;
}

/** A progress bar of a node: green while all is well, red once a job has failed. */
export function progressBar(node: WorkflowStatus | undefined, testId: string): TemplateResult {
  const percent = node ? Math.max(0, Math.min(100, node.percent_done)) : 0;
  // a failed job, or a node ended with an error (a killed workflow)
  const failed =
    (node?.failed ?? 0) > 0 || (node?.state === "TERMINATED" && !!node.exitcode);
  const failures = node && node.failed > 0 ? `, ${node.failed} failed` : "";
  const text = node ? `${node.done}/${node.total} jobs${failures}` : "";
  return html`<div class="wf-progress-line">
    <div
      class="progress wf-progress ${failed ? "failed" : "ok"}"
      role="progressbar"
      aria-valuemin="0"
      aria-valuemax="100"
      aria-valuenow=${percent}
      data-testid=${testId}
      data-failed=${failed ? "true" : "false"}
    >
      <div style="width: ${percent}%"></div>
    </div>
    <span class="wf-progress-text muted">${node ? `${percent.toFixed(0)} %` : "not run"} ${text ? `· ${text}` : ""}</span>
  </div>`;
}

export interface Tab {
  name: string;
  state: NodeState;
  /** switched on: run with the workflow (inactive tabs are greyed) */
  active: boolean;
}

/** The on/off switch of a tab (the original's checkbox per stage and step). */
export interface TabSwitch {
  /** off while the workflow runs: a running workflow keeps its description */
  locked: boolean;
  toggle: (name: string, active: boolean) => void;
}

/** A row of tabs (stages or steps) with their state icons and on/off checkboxes. */
export function tabs(
  kind: "stage" | "step",
  items: Tab[],
  selected: string,
  select: (name: string) => void,
  onOff: TabSwitch,
): TemplateResult {
  return html`<div class="wf-tabs wf-${kind}-tabs" role="tablist">
    ${items.map(
      (item) =>
        // the checkbox sits beside the tab button: a control inside a button is not allowed
        html`<span class="wf-tab-item ${item.active ? "" : "inactive"} ${item.name === selected ? "active" : ""}">
          <input
            type="checkbox"
            class="wf-tab-switch"
            data-testid="${kind}-active"
            data-name=${item.name}
            aria-label="run ${kind} ${label(item.name)}"
            title=${onOff.locked
              ? "The workflow is running: its stages and steps cannot be switched now"
              : `Run this ${kind} with the workflow`}
            .checked=${live(item.active)}
            ?disabled=${onOff.locked}
            @change=${(event: Event) => onOff.toggle(item.name, (event.target as HTMLInputElement).checked)}
          /><button
            role="tab"
            class="wf-tab ${item.name === selected ? "active" : ""} ${item.active ? "" : "inactive"}"
            aria-selected=${item.name === selected ? "true" : "false"}
            data-testid="${kind}-tab"
            data-name=${item.name}
            data-state=${item.state}
            data-active=${item.active ? "true" : "false"}
            @click=${() => select(item.name)}
          >
            ${stateIcon(item.state)} ${label(item.name)}
          </button></span
        >`,
    )}
  </div>`;
}
