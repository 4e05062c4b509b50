// The jterator project as the editor changes it: plain functions on a JtProject.
//
// The functions change the project in place (the screen owns one project object and redraws
// after each change) and answer an error message, or null, where a change may be refused.

import type {
  JtChannelInput,
  JtHandle,
  JtHandleType,
  JtHandles,
  JtModule,
  JtObjectsOutput,
  JtPipelineEntry,
  JtProject,
} from "../api/types";

const HANDLES_PREFIX = "handles/";
const HANDLES_SUFFIX = ".handles.yaml";
export const UNIQUE_OUTPUTS = "Names of outputs must be unique!";

/** A place in the project a message is about. */
export interface Problem {
  /** the module's name; "" for the pipeline as a whole */
  module: string;
  handle?: string;
  message: string;
}

/** An output (or input channel) that a later module's piped input may take. */
export interface Upstream {
  key: string;
  type: string;
  /** the module that makes it; "" for an input channel or object type */
  module: string;
  /** where it comes from when no module makes it */
  input?: "channel" | "objects";
}

/** The server's rules the editor follows for immediate feedback (the server checks them again
 * on check, save and run, and its answer counts): what the handle types take, and the pattern of
 * a pipeline entry's handles path, which holds the module-name rule. Until they are known, the
 * editor leaves the decision to the server. */
interface ServerRules {
  types: Map<string, JtHandleType> | null;
  handlesPath: RegExp | null;
}

const rules: ServerRules = { types: null, handlesPath: null };

/** Sets the rules from the server's answers (null: not known). */
export function setServerRules(types: JtHandleType[] | null, handlesPathPattern: string | null): void {
  rules.types = types ? new Map(types.map((t) => [t.name, t])) : null;
  rules.handlesPath = null;
  try {
    if (handlesPathPattern) rules.handlesPath = new RegExp(handlesPathPattern);
  } catch {
    // a pattern this browser cannot read: the server decides alone
  }
}

export function moduleName(entry: JtPipelineEntry): string {
  let name = entry.handles;
  if (name.startsWith(HANDLES_PREFIX)) name = name.slice(HANDLES_PREFIX.length);
  if (name.endsWith(HANDLES_SUFFIX)) name = name.slice(0, -HANDLES_SUFFIX.length);
  return name;
}

export function handlesPath(name: string): string {
  return `${HANDLES_PREFIX}${name}${HANDLES_SUFFIX}`;
}

/** The module file's name without ".py" (what GET module_source_code takes). */
export function sourceName(entry: JtPipelineEntry): string {
  return entry.source.replace(/\.py$/, "");
}

export function moduleNames(project: JtProject): string[] {
  return project.pipeline.pipeline.map(moduleName);
}

export function isPipe(handle: JtHandle): boolean {
  const known = rules.types?.get(handle.type);
  if (known) return known.kind === "pipe";
  return handle.type.endsWith("Image") || handle.type === "SegmentedObjects";
}

/** Outputs whose key the user names (figures are not shown). */
export function isNamedOutput(handle: JtHandle): boolean {
  return handle.type !== "Figure" && handle.key !== undefined;
}

/** Whether a piped input of type `wanted` takes a key of type `made`: as the server's handle
 * types say (the same type only, while they are not known). */
export function accepts(wanted: string, made: string): boolean {
  const known = rules.types?.get(wanted);
  return known ? known.accepts.includes(made) : wanted === made;
}

/** Fills in the parts of pipeline.yaml a project may leave out, so the editor can rely on them. */
export function normalise(project: JtProject): JtProject {
  const doc = project.pipeline;
  doc.pipeline = doc.pipeline ?? [];
  doc.input = doc.input ?? {};
  doc.input.channels = (doc.input.channels ?? []).map((c) => ({ name: c.name, correct: c.correct ?? true }));
  doc.input.objects = (doc.input.objects ?? []).map((o) => ({ name: o.name }));
  doc.output = doc.output ?? {};
  doc.output.objects = (doc.output.objects ?? []).map((o) => ({
    name: o.name,
    as_polygons: o.as_polygons ?? true,
  }));
  for (const entry of doc.pipeline) entry.active = entry.active ?? true;
  project.handles = project.handles ?? {};
  return project;
}

export function channels(project: JtProject): JtChannelInput[] {
  return project.pipeline.input?.channels ?? [];
}

export function outputObjects(project: JtProject): JtObjectsOutput[] {
  return project.pipeline.output?.objects ?? [];
}

/** The object types the pipeline loads as inputs (`input.objects`), by name. */
export function inputObjects(project: JtProject): string[] {
  return (project.pipeline.input?.objects ?? []).map((o) => o.name);
}

/** Loads the experiment's object type `name` as an input (piped inputs that take labels may use it). */
export function addInputObject(project: JtProject, name: string): void {
  const input = (project.pipeline.input = project.pipeline.input ?? {});
  input.objects = [...(input.objects ?? []), { name }];
}

export function removeInputObject(project: JtProject, index: number): void {
  project.pipeline.input?.objects?.splice(index, 1);
}

export function handlesOf(project: JtProject, index: number): JtHandles {
  const entry = project.pipeline.pipeline[index];
  return (entry && project.handles[moduleName(entry)]) || {};
}

function inputsOf(handles: JtHandles): JtHandle[] {
  return handles.input ?? [];
}

function outputsOf(handles: JtHandles): JtHandle[] {
  return handles.output ?? [];
}

/** `base`, or `base_1`, `base_2`, … : the first not in `taken`. */
export function uniqueName(base: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  if (!used.has(base)) return base;
  for (let i = 1; ; i++) if (!used.has(`${base}_${i}`)) return `${base}_${i}`;
}

/** Every named output key of the project (all modules), its input channels and input objects. */
function allKeys(project: JtProject): string[] {
  const keys = [...channels(project).map((c) => c.name), ...inputObjects(project)];
  for (const handles of Object.values(project.handles)) {
    for (const h of outputsOf(handles)) if (isNamedOutput(h) && h.key) keys.push(h.key);
  }
  return keys;
}

/** What the module at `index` may take: channels, input objects and earlier active modules' outputs. */
export function upstream(project: JtProject, index: number): Upstream[] {
  const found: Upstream[] = channels(project).map((c) => ({
    key: c.name,
    type: "IntensityImage",
    module: "",
    input: "channel" as const,
  }));
  // the server loads input objects as label images of registered objects
  for (const name of inputObjects(project)) {
    found.push({ key: name, type: "SegmentedObjects", module: "", input: "objects" });
  }
  project.pipeline.pipeline.slice(0, Math.max(0, index)).forEach((entry, i) => {
    if (!entry.active) return;
    for (const h of outputsOf(handlesOf(project, i))) {
      if (isPipe(h) && h.key) found.push({ key: h.key, type: h.type, module: moduleName(entry) });
    }
  });
  return found;
}

/** The keys a piped input of the module at `index` may take (matching type, upstream only). */
export function pipeChoices(project: JtProject, index: number, handle: JtHandle): Upstream[] {
  return upstream(project, index).filter((u) => accepts(handle.type, u.type));
}

/** Adds a module from its template at `index` (default: the end); its name is unique (a suffix
 * `_1`, `_2` when it is there already), its outputs are named `<name>.<output>` (object types
 * keep the template's name, made unique), and piped inputs take the latest matching upstream key
 * where the template's key is not available. Returns the new module's name. */
export function addModule(project: JtProject, module: JtModule, index?: number): string {
  const entries = project.pipeline.pipeline;
  const at = index === undefined ? entries.length : Math.max(0, Math.min(index, entries.length));
  const name = uniqueName(module.name, moduleNames(project));
  const handles = structuredClone(module.description) as JtHandles;
  const taken = allKeys(project);
  for (const h of outputsOf(handles)) {
    if (h.key === undefined) continue;
    h.key = h.type === "SegmentedObjects" ? uniqueName(h.key || "Objects", taken) : `${name}.${h.name}`;
    taken.push(h.key);
  }
  project.handles[name] = handles;
  entries.splice(at, 0, { source: module.source, handles: handlesPath(name), active: true });
  for (const h of inputsOf(handles)) {
    if (!isPipe(h)) continue;
    const choices = pipeChoices(project, at, h);
    if (!choices.some((c) => c.key === h.key)) h.key = choices.length ? choices[choices.length - 1].key : "";
  }
  return name;
}

export function removeModule(project: JtProject, index: number): void {
  const [entry] = project.pipeline.pipeline.splice(index, 1);
  if (entry) delete project.handles[moduleName(entry)];
}

/** Moves the module at `from` so that it ends up at index `to`. */
export function moveModule(project: JtProject, from: number, to: number): void {
  const entries = project.pipeline.pipeline;
  if (from < 0 || from >= entries.length) return;
  const target = Math.max(0, Math.min(to, entries.length - 1));
  if (target === from) return;
  const [entry] = entries.splice(from, 1);
  entries.splice(target, 0, entry);
}

/** Why `name` cannot be the new name of the module at `index`, or null. */
export function renameProblem(project: JtProject, index: number, name: string): string | null {
  if (name === "") return "A module needs a name.";
  // the server's rule, from its API description: the name makes the handles file's path
  if (rules.handlesPath && !rules.handlesPath.test(handlesPath(name))) {
    return `The server does not accept "${name}" as a module name: ${handlesPath(name)} does not match ${rules.handlesPath.source}.`;
  }
  const others = moduleNames(project).filter((_, i) => i !== index);
  if (others.includes(name)) return `Names of modules must be unique: "${name}" is already in the pipeline.`;
  return null;
}

/** Replaces the key `from` by `to` wherever a piped input or an output object type uses it. */
function renameKeyReferences(project: JtProject, from: string, to: string): void {
  for (const handles of Object.values(project.handles)) {
    for (const h of inputsOf(handles)) if (isPipe(h) && h.key === from) h.key = to;
  }
  for (const o of outputObjects(project)) if (o.name === from) o.name = to;
}

/** Renames the module at `index` (its outputs named `<old>.x` become `<new>.x`, and the inputs
 * that took them follow); returns why not, or null. */
export function renameModule(project: JtProject, index: number, name: string): string | null {
  const entry = project.pipeline.pipeline[index];
  if (!entry) return "There is no such module.";
  const old = moduleName(entry);
  if (name === old) return null;
  const problem = renameProblem(project, index, name);
  if (problem) return problem;
  const handles = project.handles[old] ?? {};
  delete project.handles[old];
  project.handles[name] = handles;
  entry.handles = handlesPath(name);
  for (const h of outputsOf(handles)) {
    if (h.key && h.key.startsWith(`${old}.`)) {
      const renamed = `${name}.${h.key.slice(old.length + 1)}`;
      renameKeyReferences(project, h.key, renamed);
      h.key = renamed;
    }
  }
  return null;
}

/** Sets the key of an output; when both the old and the new key are unique, the inputs (and
 * output object types) that took the old key take the new one. */
export function setOutputKey(project: JtProject, module: string, handle: string, key: string): void {
  const out = outputsOf(project.handles[module] ?? {}).find((h) => h.name === handle);
  if (!out) return;
  const old = out.key ?? "";
  const keys = allKeys(project);
  const unique = (k: string) => keys.filter((x) => x === k).length <= (k === old ? 1 : 0);
  if (old && key && unique(old) && unique(key)) renameKeyReferences(project, old, key);
  out.key = key;
}

/** A constant input's value from the text of its field; `error` when it does not fit its type. */
export function parseConstant(handle: JtHandle, text: string): { value: unknown } | { error: string } {
  const trimmed = text.trim();
  const asNumber = (s: string) => (s !== "" && Number.isFinite(Number(s)) ? Number(s) : null);
  switch (handle.type) {
    case "Numeric": {
      // an empty field is null: the module's own default (the server accepts it)
      if (trimmed === "") return { value: null };
      const n = asNumber(trimmed);
      return n === null ? { error: `${handle.name} must be a number.` } : { value: n };
    }
    case "Boolean":
    case "Plot":
      return { value: trimmed === "true" };
    case "Scalar": {
      const n = asNumber(trimmed);
      return { value: n === null ? text : n };
    }
    case "Sequence":
    case "Set": {
      const items = trimmed === "" ? [] : trimmed.split(",").map((s) => s.trim());
      const values = items.map((s) => asNumber(s) ?? s);
      if (handle.type === "Set" && new Set(values).size !== values.length) {
        return { error: `${handle.name} must not repeat a value.` };
      }
      return { value: values };
    }
    default:
      return { value: text };
  }
}

/** A constant input's value as the text of its field. */
export function constantText(value: unknown): string {
  if (Array.isArray(value)) return value.join(", ");
  return value === null || value === undefined ? "" : String(value);
}

/** What the editor can tell is wrong before asking the server (the server checks more). */
export function problems(project: JtProject): Problem[] {
  const found: Problem[] = [];
  const entries = project.pipeline.pipeline;
  if (!entries.some((e) => e.active)) found.push({ module: "", message: "The pipeline has no active module." });
  const keys = allKeys(project);
  const twice = new Set(keys.filter((k, i) => keys.indexOf(k) !== i));
  entries.forEach((entry, index) => {
    const module = moduleName(entry);
    const handles = handlesOf(project, index);
    if (entry.active) {
      for (const h of inputsOf(handles)) {
        if (isPipe(h) && !pipeChoices(project, index, h).some((c) => c.key === h.key)) {
          found.push({
            module,
            handle: h.name,
            message: h.key
              ? `"${h.key}" is not an input channel, an input object type or an output of an earlier active module of a type that ${h.type} accepts.`
              : `Choose an input of type ${h.type}.`,
          });
        }
        if (!isPipe(h) && h.type === "Numeric" && h.value != null && typeof h.value !== "number") {
          found.push({ module, handle: h.name, message: `${h.name} must be a number.` });
        }
      }
    }
    for (const h of outputsOf(handles)) {
      if (!isNamedOutput(h)) continue;
      if (!h.key) found.push({ module, handle: h.name, message: "An output needs a name." });
      else if (twice.has(h.key)) found.push({ module, handle: h.name, message: UNIQUE_OUTPUTS });
    }
  });
  const registered = new Set(
    entries.flatMap((e, i) =>
      e.active ? outputsOf(handlesOf(project, i)).filter((h) => h.type === "SegmentedObjects").map((h) => h.key) : [],
    ),
  );
  for (const o of outputObjects(project)) {
    if (!registered.has(o.name)) {
      found.push({ module: "", message: `Output objects "${o.name}" are not registered by any active module.` });
    }
  }
  return found;
}

/** Object types the active modules register (SegmentedObjects outputs). */
export function registeredObjects(project: JtProject): string[] {
  return project.pipeline.pipeline.flatMap((e, i) =>
    e.active
      ? outputsOf(handlesOf(project, i))
          .filter((h) => h.type === "SegmentedObjects" && h.key)
          .map((h) => h.key as string)
      : [],
  );
}

/** The module and handle a server message names ("module label, handle mask: …", or "pipeline
 * entry 2: …" for the second module of `names`), if any. */
export function placeOf(message: string, names: string[] = []): { module: string; handle?: string } | null {
  const match = /module ([A-Za-z0-9_-]+)(?:, handle ([A-Za-z0-9_]+))?:/.exec(message);
  if (match) return match[2] ? { module: match[1], handle: match[2] } : { module: match[1] };
  const entry = /pipeline entry (\d+):/.exec(message);
  const name = entry ? names[Number(entry[1]) - 1] : undefined;
  return name === undefined ? null : { module: name };
}
