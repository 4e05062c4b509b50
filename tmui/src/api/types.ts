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
