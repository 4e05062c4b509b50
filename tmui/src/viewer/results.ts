// Tool results: each a layer of filled objects (no outline) over its type's vector tiles,
// coloured from the result's values (one binary request): classes in their training
// selection's colour, clusters in a categorical palette, heat maps through a colour map.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import VectorTileLayer from "ol/layer/VectorTile";
import { Fill, Style } from "ol/style";
import type { FeatureLike } from "ol/Feature";
import type { MapobjectType, SegmentationLayer, ToolResult } from "../api/types";
import { CATEGORY_COLORS, colormap, hexToRgb } from "./colormaps";
import { showPlane, type PlaneLayer, type ViewerContext } from "./context";
import { featureId, objectSource, planeLayer, ValueLookup } from "./objects";
import { pencilIcon, trashIcon } from "../ui/icons";

interface ResultState extends PlaneLayer<VectorTileLayer> {
  result: ToolResult;
  type: MapobjectType | undefined;
  visible: boolean;
  opacity: number;
  values: ValueLookup | null;
  counts: Map<number, number>;
  renaming: boolean;
  styles: Map<string, Style>;
  error: string;
}

export interface LegendEntry {
  color: string;
  label: string;
  count: number;
}

export interface Legend {
  title: string;
  entries?: LegendEntry[];
  colormap?: string;
  low?: number;
  high?: number;
}

const HEATMAP_COLORMAP = "white-red";

export class Results {
  private states: ResultState[] = [];
  /** The newest result; older ones are "saved". */
  currentId: string | null = null;
  error = "";

  constructor(
    private readonly context: ViewerContext,
    private readonly types: MapobjectType[],
  ) {}

  async load(): Promise<void> {
    try {
      const results = await this.context.api.toolResults(this.context.experimentId);
      for (const result of results) this.adopt(result, false);
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  /** A new result becomes the current one and is shown; the others are hidden. */
  addCurrent(result: ToolResult): void {
    for (const s of this.states) s.visible = false;
    this.states = this.states.filter((s) => s.result.id !== result.id);
    this.adopt(result, true);
    this.currentId = result.id;
    this.sync();
    this.context.changed();
  }

  private adopt(result: ToolResult, visible: boolean): void {
    const type = this.types.find((t) => t.layers.some((l) => result.layers.some((r) => r.id === l.id)));
    const state: ResultState = {
      result, type, visible, opacity: 0.8, values: null, layer: null, layerKey: "",
      counts: new Map(), renaming: false, styles: new Map(), error: "",
    };
    this.states.push(state);
    if (visible) void this.loadValues(state);
  }

  private async loadValues(state: ResultState): Promise<void> {
    if (!state.type || state.values) return;
    try {
      const values = await this.context.api.values(this.context.experimentId, state.type.id, {
        toolResultId: state.result.id,
      });
      state.values = new ValueLookup(values);
      state.counts.clear();
      for (const v of values.values) {
        if (Number.isFinite(v)) state.counts.set(v, (state.counts.get(v) ?? 0) + 1);
      }
      state.error = "";
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    }
    state.styles.clear();
    state.layer?.changed();
    this.context.changed();
  }

  sync(): void {
    this.states.forEach((state, index) => {
      const layer = state.type ? planeLayer(this.context, state.type) : undefined;
      showPlane(this.context.map, state, layer?.id ?? "", () =>
        new VectorTileLayer({
          source: objectSource(this.context, layer as SegmentationLayer),
          style: (feature) => this.style(state, feature),
          zIndex: 500 + index,
          properties: { result: state.result.name },
        }),
      );
      if (state.layer) {
        state.layer.setVisible(state.visible);
        state.layer.setOpacity(state.opacity);
      }
      if (state.visible) void this.loadValues(state);
    });
  }

  private colorOf(state: ResultState, value: number): string {
    const attributes = state.result.attributes;
    if (state.result.type === "HeatmapToolResult") {
      const low = Number(attributes.min ?? state.values?.low ?? 0);
      const high = Number(attributes.max ?? state.values?.high ?? 1);
      const [r, g, b] = colormap(HEATMAP_COLORMAP, high > low ? (value - low) / (high - low) : 0.5);
      return `rgb(${r},${g},${b})`;
    }
    const labelMap = attributes.label_map as Record<string, { color?: string }> | undefined;
    const color = labelMap?.[String(value)]?.color;
    if (color) return color;
    const [r, g, b] = hexToRgb(CATEGORY_COLORS[Math.abs(Math.round(value)) % CATEGORY_COLORS.length]);
    return `rgb(${r},${g},${b})`;
  }

  private style(state: ResultState, feature: FeatureLike): Style | undefined {
    const value = state.values?.get(featureId(feature));
    if (value === undefined || !Number.isFinite(value)) return undefined;
    const color = this.colorOf(state, value);
    let style = state.styles.get(color);
    if (!style) {
      style = new Style({ fill: new Fill({ color }) });
      state.styles.set(color, style);
    }
    return style;
  }

  legends(): Legend[] {
    return this.states
      .filter((s) => s.visible && s.values)
      .map((s) => {
        if (s.result.type === "HeatmapToolResult") {
          return {
            title: s.result.name,
            colormap: HEATMAP_COLORMAP,
            low: Number(s.result.attributes.min ?? s.values!.low),
            high: Number(s.result.attributes.max ?? s.values!.high),
          };
        }
        const labelMap = s.result.attributes.label_map as Record<string, { name?: string }> | undefined;
        const entries = [...s.counts.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([value, count]) => ({
            color: this.colorOf(s, value),
            label: labelMap?.[String(value)]?.name ?? `cluster ${value}`,
            count,
          }));
        return { title: s.result.name, entries };
      });
  }

  private change(state: ResultState, change: Partial<Pick<ResultState, "visible" | "opacity">>): void {
    Object.assign(state, change);
    this.sync();
    this.context.changed();
  }

  private async rename(state: ResultState, name: string): Promise<void> {
    state.renaming = false;
    try {
      await this.context.api.renameToolResult(this.context.experimentId, state.result.id, name);
      state.result.name = name;
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  private async remove(state: ResultState): Promise<void> {
    try {
      await this.context.api.deleteToolResult(this.context.experimentId, state.result.id);
      if (state.layer) this.context.map.removeLayer(state.layer);
      this.states = this.states.filter((s) => s !== state);
      if (this.currentId === state.result.id) this.currentId = null;
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  template(): TemplateResult {
    const current = this.states.filter((s) => s.result.id === this.currentId);
    const saved = this.states.filter((s) => s.result.id !== this.currentId);
    return html`<section class="panel" data-testid="results-panel">
        <h3>Current result</h3>
        ${current.length ? html`<ul class="layers">${current.map((s) => this.row(s))}</ul>`
          : html`<p class="muted">Run a tool to see its result here.</p>`}
      </section>
      <section class="panel" data-testid="saved-results-panel">
        <h3>Saved results</h3>
        ${saved.length ? html`<ul class="layers">${saved.map((s) => this.row(s))}</ul>`
          : html`<p class="muted">None.</p>`}
        ${this.error ? html`<p class="error">${this.error}</p>` : nothing}
      </section>`;
  }

  private row(state: ResultState): TemplateResult {
    return html`<li class="layer-row" data-testid="result-row" data-name=${state.result.name}>
      <div class="row">
        <input type="checkbox" data-testid="result-visible" .checked=${live(state.visible)}
          @change=${() => this.change(state, { visible: !state.visible })} />
        ${state.renaming
          ? html`<input class="inline" .value=${state.result.name} @keydown=${(e: KeyboardEvent) => {
              if (e.key === "Enter") void this.rename(state, (e.target as HTMLInputElement).value);
            }} />`
          : html`<span class="name" title=${state.result.tool_name}>${state.result.name}</span>`}
        <button class="icon" title="Rename" @click=${() => {
          state.renaming = true;
          this.context.changed();
        }}>${pencilIcon}</button>
        <button class="icon" title="Delete" data-testid="result-delete" @click=${() => void this.remove(state)}>${trashIcon}</button>
      </div>
      <label class="slider">Opacity
        <input type="range" min="0" max="1" step="0.01" .value=${live(String(state.opacity))}
          @input=${(e: Event) => this.change(state, { opacity: Number((e.target as HTMLInputElement).value) })} />
      </label>
      ${state.error ? html`<p class="error">${state.error}</p>` : nothing}
    </li>`;
  }
}
