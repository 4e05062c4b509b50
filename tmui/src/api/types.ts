// Payloads of the REST API (see /api/openapi.json). Ids are decimal strings.

export interface Experiment {
  id: string;
  name: string;
  description: string;
  user: string;
  pixel_size_um?: number | null;
}

export interface Share {
  id: string;
  user: string;
  write_access: boolean;
}

export interface ImageSize {
  width: number | null;
  height: number | null;
}

export interface ChannelLayer {
  id: string;
  max_zoom: number | null;
  tpoint: number;
  zplane: number;
  min_intensity: number | null;
  max_intensity: number | null;
  image_size: ImageSize;
}

export interface Channel {
  id: string;
  name: string;
  bit_depth: number | null;
  layers: ChannelLayer[];
}

export interface SegmentationLayer {
  id: string;
  /** null for the static types (plates, wells, sites): one layer for every plane */
  tpoint: number | null;
  zplane: number | null;
  image_size: ImageSize;
}

export interface Feature {
  id: string;
  name: string;
}

export interface MapobjectType {
  id: string;
  name: string;
  ref_type: string | null;
  features: Feature[];
  layers: SegmentationLayer[];
}

export interface MapobjectInfo {
  mapobject_id?: string;
  mapobject_type?: string;
  plate?: string;
  well?: string;
  [key: string]: unknown;
  feature_values?: Record<string, number | null>;
}

export interface Tool {
  name: string;
  icon: string;
  description: string;
  methods: string[];
}

export interface ToolResult {
  id: string;
  name: string;
  submission_id: string;
  tool_name: string;
  type: string;
  attributes: Record<string, unknown>;
  layers: { id: string; tpoint: number; zplane: number }[];
}

export interface ToolJob {
  id: string;
  submission_id: string;
  state: string;
  exitcode: number | null;
  name?: string;
  [key: string]: unknown;
}

export interface Selection {
  id: string;
  mapobject_type_id: string;
  name: string;
  color: string;
  count: number;
}

export interface SelectionMember {
  mapobject_id: string | number;
  x: number;
  y: number;
}

export interface SelectionDetail extends Selection {
  members: SelectionMember[];
}

/** Values of a feature or tool result for every object of a type, sorted by id. */
export interface ObjectValues {
  ids: Uint32Array | Float64Array;
  values: Float32Array;
}

export interface ExperimentChoices {
  workflowTypes: string[];
  microscopeTypes: string[];
  acquisitionModes: string[];
  plateFormats: number[];
}

export interface NewExperiment {
  name: string;
  description: string;
  workflow_type?: string;
  plate_format: number;
  plate_acquisition_mode: string;
  microscope_type: string;
}

/** A box [x, y, width, height] in full-resolution pixels (rows down). */
export type Box = [number, number, number, number];

export interface Layout {
  width: number;
  height: number;
  plates: { id: string; name: string; box: Box }[];
  wells: { id: string; name: string; plate: number; box: Box }[];
  sites: { id: string[]; well: number[]; x: number[]; y: number[]; box: Box[] };
}

// --- upload: plates, acquisitions, files

/** The upload status of an acquisition or plate, derived from its files' statuses. */
export type UploadStatus = "WAITING" | "UPLOADING" | "COMPLETE" | string;

export interface Acquisition {
  id: string;
  name: string;
  description: string;
  status: UploadStatus;
  plate_name: string;
}

export interface Plate {
  id: string;
  name: string;
  description: string;
  status: UploadStatus;
  acquisitions: Acquisition[];
}

/** A microscope file stored with an acquisition. */
export interface MicroscopeFile {
  id: string;
  name: string;
  status: string;
}

/** Reports of an upload in flight: bytes sent so far of the request body. */
export type UploadProgress = (loaded: number, total: number) => void;

// --- workflow: description, status, jobs

/** The type of a step argument, as JSON Schema names it. */
export type WorkflowArgumentType = "integer" | "number" | "string" | "boolean";

/** One argument of a step as `GET …/workflow/description` describes it: its `type` picks the
 * widget, and numbers must lie in `minimum`…`maximum` (null: unbounded). */
export interface WorkflowArgument {
  name: string;
  value: unknown;
  default: unknown;
  required: boolean;
  disabled: boolean;
  help: string;
  choices: string[] | null;
  type: WorkflowArgumentType;
  minimum: number | null;
  maximum: number | null;
}

export interface WorkflowStepDescription {
  name: string;
  active: boolean;
  fullname?: string;
  help?: string;
  batch_args: WorkflowArgument[];
  /** the original's third panel; this server's steps have none (shown when sent) */
  extra_args?: WorkflowArgument[];
  submission_args: WorkflowArgument[];
}

export interface WorkflowStageDescription {
  name: string;
  mode: string;
  active: boolean;
  steps: WorkflowStepDescription[];
}

export interface WorkflowDescription {
  type: string;
  stages: WorkflowStageDescription[];
}

/** A node of the status tree of the last workflow submission (workflow, stage, step, job). */
export interface WorkflowStatus {
  id: string;
  name: string;
  type: string;
  state: string;
  live: boolean;
  done: number;
  failed: number;
  total: number;
  percent_done: number;
  exitcode: number | null;
  /** seconds */
  time: number | null;
  cpu_time: number | null;
  /** peak resident memory in MB */
  memory: number | null;
  /** the cluster node a job ran on (null for collections, locally, or when unknown) */
  node: string | null;
  /** why a job failed when the scheduler knows more than its exit code (a lost node, a time limit) */
  reason: string | null;
  created_at: string | null;
  updated_at: string | null;
  n_subtasks: number;
  submission_id?: string;
  subtasks: WorkflowStatus[];
}

/** What the jobs route's `state` filter takes: a job's state, or how an ended job ended. */
export type WorkflowJobFilter = "NEW" | "SUBMITTED" | "RUNNING" | "TERMINATED" | "FAILED" | "SUCCEEDED";

/** A page of a step's jobs, and how many jobs pass the filter in all. */
export interface WorkflowJobsPage {
  data: WorkflowStatus[];
  total: number;
}

export interface WorkflowJobLog {
  stdout: string;
  stderr: string;
}

// --- jterator editor: project, modules, debug jobs

/** One input or output of a jterator module (a handles file's entry). */
export interface JtHandle {
  name: string;
  type: string;
  /** pipe handles: the key of the array they take or make */
  key?: string | null;
  /** constant handles: the value */
  value?: unknown;
  options?: unknown[] | null;
  help?: string;
  objects?: string;
  objects_ref?: string;
  channel_ref?: string;
  [extra: string]: unknown;
}

/** A handles file (handles/<module>.handles.yaml) as a mapping. */
export interface JtHandles {
  version?: string;
  input?: JtHandle[] | null;
  output?: JtHandle[] | null;
  [extra: string]: unknown;
}

export interface JtPipelineEntry {
  source: string;
  /** handles/<module name>.handles.yaml */
  handles: string;
  active: boolean;
  [extra: string]: unknown;
}

export interface JtChannelInput {
  name: string;
  correct: boolean;
}

export interface JtObjectsOutput {
  name: string;
  as_polygons: boolean;
}

/** pipeline.yaml as a mapping. */
export interface JtPipelineDocument {
  input?: { channels?: JtChannelInput[] | null; objects?: { name: string }[] | null } | null;
  pipeline: JtPipelineEntry[];
  output?: { objects?: JtObjectsOutput[] | null } | null;
  [extra: string]: unknown;
}

/** A jterator project: the pipeline and every module's handles, by module name. */
export interface JtProject {
  pipeline: JtPipelineDocument;
  handles: Record<string, JtHandles>;
}

/** A module on the server's module path with its handles template. */
export interface JtModule {
  name: string;
  source: string;
  description: JtHandles;
}

/** A site a debug job can run on (job ids are 1-based). */
export interface JtJob {
  id: number;
  site_id: string;
  plate: string;
  well: string;
  x: number;
  y: number;
}

export interface JtJobOutput {
  id: number;
  name: string;
  task_id: string;
  state: string;
  exitcode: number | null;
  failed: boolean;
  stdout?: string;
  stderr?: string;
}

/** A handle type as the server's check knows it. */
export interface JtHandleType {
  name: string;
  /** "constant", "pipe", "measurement" or "figure" */
  kind: string;
  /** pipe types: the types of the keys a piped input of this type may take */
  accepts: string[];
}

/** A node of the status tree of the debug jobs' submission. */
export interface JtStatus {
  id: string;
  name: string;
  state: string;
  live: boolean;
  done: number;
  failed: number;
  total: number;
  percent_done: number;
  exitcode: number | null;
  submission_id?: string;
  subtasks: JtStatus[];
}

/** A trace of a Plotly figure (modules make heatmaps; other traces are listed). */
export interface PlotlyTrace {
  type?: string;
  name?: string;
  z?: (number | null)[][];
  x?: unknown[];
  y?: unknown[];
  colorscale?: string | [number, string][];
  xaxis?: string;
  yaxis?: string;
  [extra: string]: unknown;
}

export interface PlotlyFigure {
  data?: PlotlyTrace[];
  layout?: Record<string, unknown>;
}
