// Object layers: one vector-tile layer (Mapbox Vector Tiles) per object type, outlines or
// centroids as the server sends them per zoom; colouring by a feature fetches its values
// once (one binary request) and restyles the tiles already loaded.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import MVT from "ol/format/MVT";
import VectorTileLayer from "ol/layer/VectorTile";
import VectorTileSource from "ol/source/VectorTile";
import type { FeatureLike } from "ol/Feature";
import { Circle, Fill, Stroke, Style } from "ol/style";
import type { MapobjectType, ObjectValues, SegmentationLayer } from "../api/types";
import { COLORMAPS, colormap, gradientCss, hexToRgb, OUTLINE_COLORS } from "./colormaps";
import { showPlane, tileTransition, type PlaneLayer, type ViewerContext } from "./context";
import { gearIcon, pencilIcon } from "../ui/icons";

/** Colours a colour map is drawn with (objects coloured by a feature). */
const COLOR_STEPS = 256;

export interface ObjectSettings {
  visible: boolean;
  color: string;
  width: number;
  opacity: number;
  /** Colour the objects by this feature (fill), or not. */
  featureId: string | null;
  colormap: string;
  /** Colour-map range (values outside are clipped); null: the feature's own range. */
  min: number | null;
  max: number | null;
}

/** id → value, with the values' finite range. */
export class ValueLookup {
  private readonly byId = new Map<number, number>();
  readonly low: number;
  readonly high: number;

  constructor(values: ObjectValues) {
    let low = Infinity;
    let high = -Infinity;
    for (let i = 0; i < values.ids.length; i++) {
      const v = values.values[i];
      this.byId.set(Number(values.ids[i]), v);
      if (Number.isFinite(v)) {
        low = Math.min(low, v);
        high = Math.max(high, v);
      }
    }
    this.low = Number.isFinite(low) ? low : 0;
    this.high = Number.isFinite(high) ? high : 1;
  }

  get(id: number): number | undefined {
    return this.byId.get(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

export function featureId(feature: FeatureLike): number {
  return Number(feature.getId());
}

interface TypeState extends PlaneLayer<VectorTileLayer> {
  type: MapobjectType;
  settings: ObjectSettings;
  open: boolean;
  renaming: boolean;
  values: ValueLookup | null;
  loading: boolean;
  error: string;
  /** Styles by colour step (see `style`); dropped when the outline or colour map changes. */
  styles: Map<number, Style>;
}

const SOURCES = new WeakMap<ViewerContext, Map<string, VectorTileSource>>();

/** The vector-tile source of a segmentation layer, shared by its outline and result layers. */
export function objectSource(context: ViewerContext, layer: SegmentationLayer): VectorTileSource {
  let sources = SOURCES.get(context);
  if (!sources) SOURCES.set(context, (sources = new Map()));
  let source = sources.get(layer.id);
  if (!source) {
    source = new VectorTileSource({
      format: new MVT(),
      projection: context.grid.projection,
      tileGrid: context.grid.tileGrid,
      transition: tileTransition(context),
      tileUrlFunction: ([z, x, y]) =>
        `/api/experiments/${context.experimentId}/segmentation_layers/${layer.id}/tiles.mvt` +
        `?x=${x}&y=${y}&z=${z}&access_token=${context.tileToken()}`,
    });
    sources.set(layer.id, source);
  }
  return source;
}

export function planeLayer(context: ViewerContext, type: MapobjectType): SegmentationLayer | undefined {
  const { tpoint, zplane } = context.plane();
  return (
    type.layers.find((l) => l.tpoint === tpoint && l.zplane === zplane) ??
    // jterator segments a projection of a z-stack: its objects are stored at z-plane 0
    // and belong to every plane of their time point
    type.layers.find((l) => l.tpoint === tpoint && l.zplane === 0) ??
    type.layers.find((l) => l.tpoint === null)
  );
}

/** Plates, wells and sites: objects made from the layout, not by segmentation. */
export function isStatic(type: MapobjectType): boolean {
  return type.layers.length > 0 && type.layers.every((l) => l.tpoint === null);
}

function rgba(hex: string, alpha: number): string {
  const [r, g, b] = hexToRgb(hex);
  return `rgba(${r},${g},${b},${alpha})`;
}

export class Objects {
  readonly states: TypeState[];

  constructor(
    private readonly context: ViewerContext,
    types: MapobjectType[],
    saved: Record<string, Partial<ObjectSettings>>,
    visibleNames: string[] | null,
  ) {
    this.states = types.map((type) => {
      const defaults: ObjectSettings = {
        visible: visibleNames ? visibleNames.includes(type.name) : false,
        color: OUTLINE_COLORS[0],
        width: 1,
        opacity: 1,
        featureId: null,
        colormap: "viridis",
        min: null,
        max: null,
      };
      const settings = { ...defaults, ...(saved[type.name] ?? {}) };
      if (visibleNames) settings.visible = defaults.visible;
      if (settings.featureId && !type.features.some((f) => f.id === settings.featureId)) {
        settings.featureId = null;
      }
      return {
        type, settings, layer: null, layerKey: "", open: false, renaming: false,
        values: null, loading: false, error: "", styles: new Map(),
      };
    });
    for (const state of this.states) if (state.settings.featureId) void this.loadValues(state);
  }

  byId(typeId: string): TypeState | undefined {
    return this.states.find((s) => s.type.id === typeId);
  }

  sync(): void {
    this.states.forEach((state, index) => {
      const layer = planeLayer(this.context, state.type);
      showPlane(this.context.map, state, layer?.id ?? "", () =>
        new VectorTileLayer({
          source: objectSource(this.context, layer as SegmentationLayer),
          style: (feature) => this.style(state, feature),
          zIndex: 100 + index,
          properties: { mapobjectType: state.type.name },
          renderBuffer: 50,
        }),
      );
      state.layer?.setVisible(state.settings.visible);
    });
  }

  /** The colour-map step of an object (-1: not coloured). */
  private step(state: TypeState, feature: FeatureLike): number {
    const s = state.settings;
    if (!s.featureId || !state.values) return -1;
    const value = state.values.get(featureId(feature));
    if (value === undefined || !Number.isFinite(value)) return -1;
    const low = s.min ?? state.values.low;
    const high = s.max ?? state.values.high;
    const t = high > low ? (value - low) / (high - low) : 0.5;
    return Math.round(Math.min(1, Math.max(0, t)) * (COLOR_STEPS - 1));
  }

  private style(state: TypeState, feature: FeatureLike): Style {
    const s = state.settings;
    // the colour map in COLOR_STEPS steps: a few hundred styles, reused by every recolouring
    const step = this.step(state, feature);
    const point = feature.getGeometry()?.getType() === "Point";
    const key = (point ? COLOR_STEPS + 1 : 0) + step + 1;
    let style = state.styles.get(key);
    if (!style) {
      let fill: string | null = null;
      if (step >= 0) {
        const [r, g, b] = colormap(s.colormap, step / (COLOR_STEPS - 1));
        fill = `rgba(${r},${g},${b},${s.opacity})`;
      }
      const stroke = new Stroke({ color: rgba(s.color, s.opacity), width: s.width });
      style = point
        ? new Style({
            image: new Circle({ radius: 3, fill: new Fill({ color: fill ?? rgba(s.color, s.opacity) }) }),
          })
        : // a transparent fill makes the inside clickable (hit detection draws what is styled)
          new Style({ stroke, fill: new Fill({ color: fill ?? "rgba(0,0,0,0)" }) });
      state.styles.set(key, style);
    }
    return style;
  }

  /** Apply a settings change: restyle without any new tile request. */
  change(state: TypeState, change: Partial<ObjectSettings>): void {
    const before = state.settings.featureId;
    Object.assign(state.settings, change);
    if (["color", "width", "opacity", "colormap"].some((k) => k in change)) state.styles.clear();
    if (state.settings.featureId !== before) {
      state.values = null;
      state.settings.min = change.min ?? null;
      state.settings.max = change.max ?? null;
      if (state.settings.featureId) void this.loadValues(state);
    }
    this.sync();
    state.layer?.changed();
    this.context.saveSettings();
    this.context.changed();
  }

  /** Show a type's outlines (a selection of it became active). */
  show(typeId: string): void {
    const state = this.byId(typeId);
    if (state && !state.settings.visible) this.change(state, { visible: true });
  }

  private async loadValues(state: TypeState): Promise<void> {
    const featureId = state.settings.featureId;
    if (!featureId) return;
    state.loading = true;
    this.context.changed();
    try {
      const values = await this.context.api.values(this.context.experimentId, state.type.id, { featureId });
      if (state.settings.featureId !== featureId) return; // changed meanwhile
      state.values = new ValueLookup(values);
      state.error = "";
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    } finally {
      state.loading = false;
    }
    state.layer?.changed();
    this.context.changed();
  }

  savedSettings(): Record<string, ObjectSettings> {
    return Object.fromEntries(this.states.map((s) => [s.type.name, { ...s.settings }]));
  }

  visibleNames(): string[] {
    return this.states.filter((s) => s.settings.visible).map((s) => s.type.name);
  }

  /** Colour bars of the types coloured by a feature (for the map's legend). */
  legends(): { title: string; colormap: string; low: number; high: number }[] {
    return this.states
      .filter((s) => s.settings.visible && s.settings.featureId && s.values)
      .map((s) => ({
        title: `${s.type.name}: ${s.type.features.find((f) => f.id === s.settings.featureId)?.name ?? ""}`,
        colormap: s.settings.colormap,
        low: s.settings.min ?? s.values!.low,
        high: s.settings.max ?? s.values!.high,
      }));
  }

  template(): TemplateResult {
    return html`<section class="panel" data-testid="objects-panel">
      <h3>Objects</h3>
      ${this.states.length === 0
        ? html`<p class="muted">No objects yet: run the image analysis stage.</p>`
        : nothing}
      <ul class="layers">
        ${this.states.map((s) => this.row(s))}
      </ul>
    </section>`;
  }

  private row(state: TypeState): TemplateResult {
    const s = state.settings;
    const number = (e: Event) => Number((e.target as HTMLInputElement).value);
    const optional = (e: Event) => {
      const text = (e.target as HTMLInputElement).value;
      return text === "" ? null : Number(text);
    };
    return html`<li class="layer-row" data-testid="object-row" data-type=${state.type.name}>
      <div class="row">
        <input type="checkbox" data-testid="object-visible" .checked=${live(s.visible)}
          @change=${() => this.change(state, { visible: !s.visible })} title="Show" />
        <span class="swatch outline" style="border-color:${s.color}"></span>
        ${state.renaming
          ? html`<input class="inline" .value=${state.type.name} @keydown=${(e: KeyboardEvent) => {
              if (e.key === "Enter") void this.rename(state, (e.target as HTMLInputElement).value);
              if (e.key === "Escape") {
                state.renaming = false;
                this.context.changed();
              }
            }} />`
          : html`<span class="name" @click=${() => {
              state.open = !state.open;
              this.context.changed();
            }}>${state.type.name}</span>`}
        <button class="icon" title="Rename" @click=${() => {
          state.renaming = true;
          this.context.changed();
        }}>${pencilIcon}</button>
        <button class="icon" data-testid="object-settings" title="Settings" @click=${() => {
          state.open = !state.open;
          this.context.changed();
        }}>${gearIcon}</button>
      </div>
      ${state.open
        ? html`<div class="settings">
            <div class="presets">
              ${OUTLINE_COLORS.map(
                (color) => html`<button class="preset ${s.color === color ? "active" : ""}"
                  style="background:${color}" data-color=${color}
                  @click=${() => this.change(state, { color })}></button>`,
              )}
              <input type="color" data-testid="object-color" .value=${live(s.color)}
                @input=${(e: InputEvent) => this.change(state, { color: (e.target as HTMLInputElement).value })} />
            </div>
            <label class="slider">Width
              <input type="range" min="0.5" max="6" step="0.5" data-testid="object-width"
                .value=${live(String(s.width))} @input=${(e: Event) => this.change(state, { width: number(e) })} />
            </label>
            <label class="slider">Opacity
              <input type="range" min="0" max="1" step="0.01" data-testid="object-opacity"
                .value=${live(String(s.opacity))} @input=${(e: Event) => this.change(state, { opacity: number(e) })} />
            </label>
            <label>Colour by feature
              <select data-testid="color-feature" @change=${(e: Event) =>
                this.change(state, { featureId: (e.target as HTMLSelectElement).value || null })}>
                <option value="" ?selected=${!s.featureId}>— none (outlines only) —</option>
                ${state.type.features.map(
                  (f) => html`<option value=${f.id} ?selected=${f.id === s.featureId}>${f.name}</option>`,
                )}
              </select>
            </label>
            ${s.featureId
              ? html`<div class="colormaps">
                    ${COLORMAPS.map(
                      (name) => html`<button class="colormap ${s.colormap === name ? "active" : ""}"
                        title=${name} data-colormap=${name} style="background:${gradientCss(name)}"
                        @click=${() => this.change(state, { colormap: name })}></button>`,
                    )}
                  </div>
                  <div class="row">
                    <label class="compact">from <input type="number" class="num" data-testid="color-min"
                      placeholder=${state.values ? String(state.values.low) : ""}
                      .value=${live(s.min === null ? "" : String(s.min))}
                      @change=${(e: Event) => this.change(state, { min: optional(e) })} /></label>
                    <label class="compact">to <input type="number" class="num" data-testid="color-max"
                      placeholder=${state.values ? String(state.values.high) : ""}
                      .value=${live(s.max === null ? "" : String(s.max))}
                      @change=${(e: Event) => this.change(state, { max: optional(e) })} /></label>
                  </div>
                  ${state.loading ? html`<p class="muted">Loading values…</p>` : nothing}`
              : nothing}
            ${state.error ? html`<p class="error">${state.error}</p>` : nothing}
          </div>`
        : nothing}
    </li>`;
  }

  private async rename(state: TypeState, name: string): Promise<void> {
    state.renaming = false;
    try {
      await this.context.api.renameMapobjectType(this.context.experimentId, state.type.id, name);
      state.type.name = name;
      state.error = "";
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }
}
