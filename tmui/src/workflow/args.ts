// The typed inputs of a step's arguments (by the type the server declares): checkbox, bounded
// number, text or choice, with help, default and range.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import type { WorkflowArgument } from "../api/types";
import { argumentKind, isMissing, rangeText, shownValue } from "./model";

export interface ArgumentField {
  /** the argument, its `value` being the last valid one */
  arg: WorkflowArgument;
  /** what the field shows when it differs from the value (a refused entry) */
  raw: string | undefined;
  error: string | undefined;
  /** locked while the workflow runs */
  locked: boolean;
  /** `badInput`: a number field holds text the browser cannot read as a number */
  onInput: (raw: string | boolean, badInput: boolean) => void;
}

/** "default: 2500; between 1 and 1048576": what the field takes unless the user types. */
function defaultText(arg: WorkflowArgument): string {
  const shown = arg.default === null || arg.default === undefined ? "no default" : `default: ${shownValue(arg.default)}`;
  const range = arg.type === "integer" || arg.type === "number" ? rangeText(arg) : "";
  return range ? `${shown}; ${range}` : shown;
}

function widget(field: ArgumentField, id: string): TemplateResult {
  const { arg } = field;
  const kind = argumentKind(arg);
  const disabled = field.locked || arg.disabled;
  const text = field.raw ?? shownValue(arg.value);
  const input = (event: Event) => {
    const target = event.target as HTMLInputElement;
    field.onInput(target.type === "checkbox" ? target.checked : target.value, target.validity.badInput);
  };
  if (kind === "checkbox") {
    return html`<input
      id=${id}
      type="checkbox"
      data-kind="checkbox"
      .checked=${live(Boolean(arg.value))}
      ?disabled=${disabled}
      @change=${input}
    />`;
  }
  if (kind === "choice") {
    const value = arg.value === null || arg.value === undefined ? "" : String(arg.value);
    return html`<select id=${id} data-kind="choice" ?disabled=${disabled} @change=${input}>
      ${arg.required ? nothing : html`<option value="" ?selected=${value === ""}>(default)</option>`}
      ${(arg.choices ?? []).map((c) => html`<option value=${c} ?selected=${c === value}>${c}</option>`)}
    </select>`;
  }
  // numbers get the browser's number field, bounded like the server; the page still checks
  // what is typed
  const number = kind === "number";
  return html`<input
    id=${id}
    type=${number ? "number" : "text"}
    data-kind=${number ? "number" : "text"}
    data-type=${number ? arg.type : nothing}
    min=${number ? (arg.minimum ?? nothing) : nothing}
    max=${number ? (arg.maximum ?? nothing) : nothing}
    step=${number ? (arg.type === "integer" ? "1" : "any") : nothing}
    class=${field.error ? "invalid" : ""}
    aria-invalid=${field.error ? "true" : "false"}
    placeholder=${arg.default === null || arg.default === undefined ? "" : shownValue(arg.default)}
    .value=${live(text)}
    ?disabled=${disabled}
    @input=${input}
  />`;
}

/** One argument: name (required marked, else "(optional)"), input, help, default, error. */
export function argumentRow(field: ArgumentField, scope: string): TemplateResult {
  const { arg } = field;
  const id = `wf-arg-${scope}-${arg.name}`;
  const missing = isMissing(arg) && field.raw === undefined;
  return html`<div
    class="wf-arg ${field.error || missing ? "has-error" : ""}"
    data-testid="argument"
    data-name=${arg.name}
    data-kind=${argumentKind(arg)}
    data-type=${arg.type}
  >
    <label for=${id} class="wf-arg-name">
      ${arg.name}
      ${arg.required
        ? html`<span class="wf-required" title="required">*</span>`
        : html`<span class="muted wf-optional">(optional)</span>`}
    </label>
    <div class="wf-arg-input">${widget(field, id)}</div>
    <div class="wf-arg-help">
      ${arg.help} <span class="muted">(${defaultText(arg)})</span>
      ${arg.disabled ? html`<span class="muted">— set by the pipeline editor's debug runs</span>` : nothing}
    </div>
    ${field.error
      ? html`<p class="error wf-arg-error" role="alert" data-testid="argument-error">${field.error}</p>`
      : missing
        ? html`<p class="error wf-arg-error" data-testid="argument-error">A value is required.</p>`
        : nothing}
  </div>`;
}
