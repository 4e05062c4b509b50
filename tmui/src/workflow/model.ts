// The workflow manager's rules, free of rendering: argument widgets and checks, the state of a
// stage or step, and when each button is on.

import type {
  WorkflowArgument,
  WorkflowDescription,
  WorkflowStageDescription,
  WorkflowStatus,
  WorkflowStepDescription,
} from "../api/types";

/** The panels of a step page, in order (the original's "Batch", "Extra", "Submission"). */
export const ARGUMENT_GROUPS = [
  ["batch_args", "Batch arguments"],
  ["extra_args", "Extra arguments"],
  ["submission_args", "Submission arguments"],
] as const;

export type ArgumentGroup = (typeof ARGUMENT_GROUPS)[number][0];

export type ArgumentKind = "checkbox" | "number" | "text" | "choice";

/** The widget of an argument, by the type the server declares (its choices first). */
export function argumentKind(arg: WorkflowArgument): ArgumentKind {
  if (arg.type === "boolean") return "checkbox";
  if (arg.choices && arg.choices.length > 0) return "choice";
  if (arg.type === "integer" || arg.type === "number") return "number";
  return "text";
}

/** The range of a number argument as the server's messages word it ("" when unbounded). */
export function rangeText(arg: WorkflowArgument): string {
  const low = arg.minimum ?? null;
  const high = arg.maximum ?? null;
  if (low !== null && high !== null) return `between ${low} and ${high}`;
  if (low !== null) return `>= ${low}`;
  if (high !== null) return `<= ${high}`;
  return "";
}

/** The text an input shows for a value (null: empty). */
export function shownValue(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

// a number only: Number() alone would also take "0x10", "" and "Infinity"
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(arg: WorkflowArgument, text: string): Parsed {
  const integer = arg.type === "integer";
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  // an integer may be written 2000.0 or 2e3 (it is sent as the number 2000), never 2.5
  if (!Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
    return { ok: false, error: `${arg.name} must be ${integer ? "an integer" : "a number"}, got "${text}".` };
  }
  const low = arg.minimum ?? null;
  const high = arg.maximum ?? null;
  if ((low !== null && value < low) || (high !== null && value > high)) {
    return { ok: false, error: `${arg.name} must be ${rangeText(arg)}, got ${text}.` };
  }
  return { ok: true, value };
}

/**
 * Check what was typed into an argument's field (`badInput`: the browser's number field holds
 * text it cannot read); its value of the argument's type, or why it is refused.
 */
export function parseArgument(arg: WorkflowArgument, raw: string | boolean, badInput = false): Parsed {
  if (arg.type === "boolean") {
    if (typeof raw === "boolean") return { ok: true, value: raw };
    return { ok: false, error: `${arg.name} must be true or false.` };
  }
  const text = String(raw).trim();
  if (badInput) {
    return { ok: false, error: `${arg.name} must be ${arg.type === "integer" ? "an integer" : "a number"}.` };
  }
  if (text === "") {
    return arg.required
      ? { ok: false, error: `${arg.name} is required.` }
      : { ok: true, value: null };
  }
  if (arg.choices && arg.choices.length > 0 && !arg.choices.includes(text)) {
    return { ok: false, error: `${arg.name} must be one of ${arg.choices.join(", ")}.` };
  }
  if (arg.type === "integer" || arg.type === "number") return parseNumber(arg, text);
  return { ok: true, value: text };
}

/** Why an argument's current value is not one of its type and range, or "" (no value: ""). */
export function valueError(arg: WorkflowArgument): string {
  const value = arg.value;
  if (value === null || value === undefined) return "";
  if (arg.type === "boolean") return typeof value === "boolean" ? "" : `${arg.name} must be true or false.`;
  if (arg.type === "string") {
    if (typeof value !== "string") return `${arg.name} must be a text.`;
    return arg.choices && arg.choices.length > 0 && !arg.choices.includes(value)
      ? `${arg.name} must be one of ${arg.choices.join(", ")}.`
      : "";
  }
  if (typeof value !== "number") return `${arg.name} must be a number.`;
  const parsed = parseNumber(arg, String(value));
  return parsed.ok ? "" : parsed.error;
}

/** Whether a required argument has no value. */
export function isMissing(arg: WorkflowArgument): boolean {
  return arg.required && (arg.value === null || arg.value === undefined || arg.value === "");
}

export function stepArguments(step: WorkflowStepDescription): WorkflowArgument[] {
  return ARGUMENT_GROUPS.flatMap(([group]) => step[group] ?? []);
}

export function stepMissing(step: WorkflowStepDescription): boolean {
  return step.active && stepArguments(step).some(isMissing);
}

/** Whether an active stage has an active step that misses a required argument. */
export function stageMissing(stage: WorkflowStageDescription): boolean {
  return stage.active && stage.steps.some(stepMissing);
}

/** The description as the server stores it: names and values only. */
export function descriptionToSave(description: WorkflowDescription): WorkflowDescription {
  const pairs = (args: WorkflowArgument[] | undefined) =>
    (args ?? []).map((a) => ({ name: a.name, value: a.value }) as WorkflowArgument);
  return {
    type: description.type,
    stages: description.stages.map((stage) => ({
      name: stage.name,
      mode: stage.mode,
      active: stage.active,
      steps: stage.steps.map((step) => ({
        name: step.name,
        active: step.active,
        batch_args: pairs(step.batch_args),
        submission_args: pairs(step.submission_args),
        ...(step.extra_args ? { extra_args: pairs(step.extra_args) } : {}),
      })),
    })),
  };
}

// ------------------------------------------------------------------- states

/** What a stage's or step's tab shows. */
export type NodeState = "done" | "failed" | "running" | "submitted" | "missing" | "idle";

export function nodeState(node: WorkflowStatus | undefined, missing = false): NodeState {
  if (missing) return "missing";
  if (!node) return "idle";
  if (node.failed > 0) return "failed";
  if (node.state === "RUNNING") return "running";
  if (node.state === "SUBMITTED" || (node.state === "NEW" && node.live)) return "submitted";
  if (node.state === "TERMINATED") return node.exitcode && node.exitcode !== 0 ? "failed" : "done";
  return "idle";
}

export function isDone(node: WorkflowStatus): boolean {
  return node.state === "TERMINATED" && node.failed === 0 && !node.exitcode;
}

export function childNamed(node: WorkflowStatus | null | undefined, name: string): WorkflowStatus | undefined {
  return node?.subtasks.find((s) => s.name === name);
}

// ------------------------------------------------------------------ buttons

/** Workflow states in which Submit is off (the original's list; ours also has SUBMITTED). */
const SUBMIT_OFF_STATES = new Set(["RUNNING", "NEW", "SUBMITTED", "TERMINATING", "STOPPING", "UNKNOWN"]);
/** Workflow states in which Resume and Resubmit are on. */
const RESUBMIT_STATES = new Set(["TERMINATED", "STOPPED"]);

export interface Buttons {
  submit: boolean;
  resume: boolean;
  resubmit: boolean;
  kill: boolean;
}

/**
 * The original's rules: Submit off while the workflow is RUNNING, NEW, TERMINATING, STOPPING or
 * UNKNOWN; Resume and Resubmit only when it is TERMINATED or STOPPED; Kill exactly when Submit is
 * off for the workflow's state. Its "upload stage" rule becomes: Submit (and Resubmit, which
 * may start at image conversion) stay off until the experiment's plates are uploaded completely
 * (`uploadReady`). Before the first submission (`state` null) Submit is on and the others off.
 */
export function buttons(state: string | null, uploadReady: boolean): Buttons {
  const busy = state !== null && SUBMIT_OFF_STATES.has(state);
  const again = state !== null && RESUBMIT_STATES.has(state);
  return {
    submit: !busy && uploadReady,
    resume: again,
    resubmit: again && uploadReady,
    kill: busy,
  };
}

/** The stage Resume starts at: the first of the last submission that is not done. */
export function resumeStage(status: WorkflowStatus | null): string | null {
  return status?.subtasks.find((stage) => !isDone(stage))?.name ?? null;
}

// -------------------------------------------------------------------- format

export function formatSeconds(seconds: number | null): string {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${h}:${pad(m)}:${pad(s % 60)}`;
}

export function formatMemory(mb: number | null): string {
  return mb === null || mb === undefined ? "" : `${Math.round(mb)} MB`;
}

export function label(name: string): string {
  return name.replace(/_/g, " ");
}
