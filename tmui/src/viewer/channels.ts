// Channel layers: one WebGL tile layer per channel, window and colour applied on the GPU,
// blended additively (the layers' canvases composite with `plus-lighter`, see style.css).

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import WebGLTileLayer from "ol/layer/WebGLTile";
import ImageTile from "ol/source/ImageTile";
import type { Pixel } from "ol/pixel";
import type { Channel, ChannelLayer } from "../api/types";
import { CHANNEL_PRESETS, hexToRgb } from "./colormaps";
import { showPlane, tileTransition, type PlaneLayer, type ViewerContext } from "./context";
import { gearIcon, pencilIcon } from "../ui/icons";

export interface ChannelSettings {
  visible: boolean;
  color: string;
  /** Display window in real intensity units. */
  min: number;
  max: number;
  opacity: number;
}

/** Percentiles of the auto-contrast window (of the non-background pixels). */
const AUTO_PERCENTILES: [number, number] = [0.5, 99.5];

interface ChannelState extends PlaneLayer<WebGLTileLayer> {
  channel: Channel;
  settings: ChannelSettings;
  /** Real intensities of 8-bit tile values 0 and 255. */
  range: [number, number];
  selected: boolean;
  open: boolean;
  renaming: boolean;
  error: string;
}

function intensityRange(channel: Channel): [number, number] {
  const mins = channel.layers.map((l) => l.min_intensity ?? 0);
  const maxs = channel.layers.map((l) => l.max_intensity ?? 255);
  const lo = mins.length ? Math.min(...mins) : 0;
  const hi = maxs.length ? Math.max(...maxs) : 255;
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

export class Channels {
  readonly states: ChannelState[];
  private dragged: ChannelState | null = null;

  constructor(
    private readonly context: ViewerContext,
    channels: Channel[],
    saved: Record<string, Partial<ChannelSettings>>,
    visibleNames: string[] | null,
  ) {
    this.states = channels.map((channel, index) => {
      const range = intensityRange(channel);
      const defaults: ChannelSettings = {
        visible: visibleNames ? visibleNames.includes(channel.name) : index === 0,
        color: CHANNEL_PRESETS.grey,
        min: range[0],
        max: range[1],
        opacity: 1,
      };
      const remembered = saved[channel.name] ?? {};
      const settings = { ...defaults, ...remembered };
      if (visibleNames) settings.visible = defaults.visible;
      return {
        channel, settings, range, layer: null, layerKey: "",
        selected: false, open: false, renaming: false, error: "",
      };
    });
  }

  /** The channel layer of the plane shown, if the pyramid has one. */
  private currentLayer(state: ChannelState): ChannelLayer | undefined {
    const { tpoint, zplane } = this.context.plane();
    return state.channel.layers.find((l) => l.tpoint === tpoint && l.zplane === zplane);
  }

  /** Make the map's layers match the plane and the settings (no new tile requests for styling). */
  sync(): void {
    this.states.forEach((state, index) => {
      const layer = this.currentLayer(state);
      showPlane(this.context.map, state, layer?.id ?? "", () =>
        this.makeLayer(layer as ChannelLayer, state, index),
      );
      if (state.layer) {
        state.layer.setVisible(state.settings.visible);
        state.layer.updateStyleVariables(this.variables(state));
      }
    });
  }

  private variables(state: ChannelState): Record<string, number> {
    const [r, g, b] = hexToRgb(state.settings.color);
    const [lo, hi] = state.range;
    const span = hi - lo;
    const wlo = (state.settings.min - lo) / span;
    const whi = Math.max(wlo + 1e-6, (state.settings.max - lo) / span);
    return { r, g, b, wlo, whi, opacity: state.settings.opacity };
  }

  private makeLayer(layer: ChannelLayer, state: ChannelState, index: number): WebGLTileLayer {
    const { context } = this;
    const experimentId = context.experimentId;
    const source = new ImageTile({
      projection: context.grid.projection,
      tileGrid: context.grid.tileGrid,
      transition: tileTransition(context),
      interpolate: false,
      url: (z, x, y) =>
        `/api/experiments/${experimentId}/channel_layers/${layer.id}/tiles?x=${x}&y=${y}&z=${z}` +
        `&access_token=${context.tileToken()}`,
    });
    // the window maps the tile's 8-bit value (0..1 here) to 0..1, times colour and opacity
    const level = [
      "*",
      ["clamp", ["/", ["-", ["band", 1], ["var", "wlo"]], ["-", ["var", "whi"], ["var", "wlo"]]], 0, 1],
      ["var", "opacity"],
    ];
    return new WebGLTileLayer({
      source,
      // a class of its own: WebGL layers of one class share a canvas (and then cover each other)
      className: `tm-channel tm-channel-${state.channel.id}`,
      zIndex: index,
      properties: { channel: state.channel.name },
      style: {
        variables: this.variables(state),
        color: ["color", ["*", ["var", "r"], level], ["*", ["var", "g"], level], ["*", ["var", "b"], level], 1],
      },
    });
  }

  visible(): ChannelState[] {
    return this.states.filter((s) => s.settings.visible && s.layer);
  }

  /** Real intensity of each visible channel at a screen pixel (null where no tile is loaded). */
  readout(pixel: Pixel): { name: string; value: number | null }[] {
    return this.visible().map((state) => {
      const data = state.layer?.getData(pixel) as Uint8ClampedArray | Float32Array | null;
      if (!data) return { name: state.channel.name, value: null };
      const [lo, hi] = state.range;
      return { name: state.channel.name, value: round(lo + (data[0] / 255) * (hi - lo)) };
    });
  }

  /** Put the dragged channel where `target` is (the list's order; channels add up in any order). */
  private move(target: ChannelState): void {
    const dragged = this.dragged;
    this.dragged = null;
    if (!dragged || dragged === target) return;
    this.states.splice(this.states.indexOf(dragged), 1);
    this.states.splice(this.states.indexOf(target), 0, dragged);
    this.states.forEach((s, i) => s.layer?.setZIndex(i));
    this.context.changed();
  }

  savedSettings(): Record<string, ChannelSettings> {
    return Object.fromEntries(this.states.map((s) => [s.channel.name, { ...s.settings }]));
  }

  visibleNames(): string[] {
    return this.states.filter((s) => s.settings.visible).map((s) => s.channel.name);
  }

  /** Change settings of a channel and of every other selected channel with it. */
  private change(state: ChannelState, change: Partial<ChannelSettings>): void {
    const targets = state.selected ? this.states.filter((s) => s.selected) : [state];
    for (const target of targets) {
      Object.assign(target.settings, change);
      const [lo, hi] = target.range;
      target.settings.min = Math.min(Math.max(target.settings.min, lo), hi);
      target.settings.max = Math.min(Math.max(target.settings.max, lo), hi);
    }
    this.sync();
    this.context.saveSettings();
    this.context.changed();
  }

  private reset(state: ChannelState): void {
    this.change(state, { min: state.range[0], max: state.range[1], opacity: 1, color: CHANNEL_PRESETS.grey });
  }

  /** Set the window to percentiles of the channel's overview tiles (background excluded). */
  async autoContrast(state: ChannelState): Promise<void> {
    const layer = this.currentLayer(state);
    if (!layer) return;
    const { grid, experimentId } = this.context;
    const z = Math.min(grid.maxZoom, 2);
    const count = 2 ** z;
    const histogram = new Float64Array(256);
    const jobs: Promise<void>[] = [];
    const size = 256 * 2 ** (grid.maxZoom - z);
    for (let x = 0; x < Math.min(count, Math.ceil(grid.width / size)); x++) {
      for (let y = 0; y < Math.min(count, Math.ceil(grid.height / size)); y++) {
        const url =
          `/api/experiments/${experimentId}/channel_layers/${layer.id}/tiles?x=${x}&y=${y}&z=${z}` +
          `&access_token=${this.context.tileToken()}`;
        jobs.push(addToHistogram(url, histogram));
      }
    }
    try {
      await Promise.all(jobs);
      state.error = "";
    } catch (err) {
      state.error = `Auto-contrast failed: ${String(err)}`;
      this.context.changed();
      return;
    }
    histogram[0] = 0; // black is where nothing was imaged
    const [p0, p1] = percentiles(histogram, AUTO_PERCENTILES);
    const [lo, hi] = state.range;
    const toReal = (v: number) => round(lo + (v / 255) * (hi - lo));
    this.change(state, { min: toReal(p0), max: toReal(Math.max(p1, p0 + 1)) });
  }

  template(): TemplateResult {
    return html`<section class="panel" data-testid="channels-panel">
      <h3>Channels</h3>
      ${this.states.length === 0 ? html`<p class="muted">No channels.</p>` : nothing}
      <ul class="layers">
        ${this.states.map((s) => this.row(s))}
      </ul>
      <p class="hint">Shift-click names to select several channels; changes then apply to all.</p>
    </section>`;
  }

  private row(state: ChannelState): TemplateResult {
    const s = state.settings;
    const [lo, hi] = state.range;
    const step = (hi - lo) / 255;
    const toggle = () => this.change(state, { visible: !s.visible });
    const clickName = (event: MouseEvent) => {
      if (event.shiftKey) {
        state.selected = !state.selected;
      } else {
        state.open = !state.open;
      }
      this.context.changed();
    };
    const name = state.renaming
      ? html`<input
          class="inline"
          .value=${state.channel.name}
          @keydown=${(e: KeyboardEvent) => {
            if (e.key === "Enter") void this.rename(state, (e.target as HTMLInputElement).value);
            if (e.key === "Escape") {
              state.renaming = false;
              this.context.changed();
            }
          }}
        />`
      : html`<span class="name" @click=${clickName} title="Click for settings; shift-click to select"
          >${state.channel.name}</span
        >`;
    return html`<li
      class="layer-row ${state.selected ? "selected" : ""}"
      data-testid="channel-row"
      data-channel=${state.channel.name}
      draggable="true"
      @dragstart=${() => (this.dragged = state)}
      @dragover=${(e: DragEvent) => e.preventDefault()}
      @drop=${(e: DragEvent) => {
        e.preventDefault();
        this.move(state);
      }}
    >
      <div class="row">
        <input type="checkbox" data-testid="channel-visible" .checked=${live(s.visible)} @change=${toggle} title="Show" />
        <span class="swatch" style="background:${s.color}"></span>
        ${name}
        <button class="icon" title="Rename" @click=${() => {
          state.renaming = true;
          this.context.changed();
        }}>${pencilIcon}</button>
        <button class="icon" data-testid="channel-settings" title="Settings" @click=${() => {
          state.open = !state.open;
          this.context.changed();
        }}>${gearIcon}</button>
      </div>
      ${state.open
        ? html`<div class="settings" data-testid="channel-settings-panel">
            <div class="presets">
              ${Object.entries(CHANNEL_PRESETS).map(
                ([label, color]) =>
                  html`<button
                    class="preset ${s.color === color ? "active" : ""}"
                    style="background:${color}"
                    title=${label}
                    data-color=${label}
                    @click=${() => this.change(state, { color })}
                  ></button>`,
              )}
              <input
                type="color"
                title="Any colour"
                data-testid="channel-color"
                .value=${live(s.color)}
                @input=${(e: InputEvent) => this.change(state, { color: (e.target as HTMLInputElement).value })}
              />
            </div>
            ${this.windowInput(state, "min", "Min", lo, hi, step)}
            ${this.windowInput(state, "max", "Max", lo, hi, step)}
            <label class="slider"
              >Opacity
              <input
                type="range" min="0" max="1" step="0.01"
                .value=${live(String(s.opacity))}
                @input=${(e: InputEvent) =>
                  this.change(state, { opacity: Number((e.target as HTMLInputElement).value) })}
              />
            </label>
            <div class="row">
              <button data-testid="auto-contrast" @click=${() => void this.autoContrast(state)}>Auto</button>
              <button data-testid="reset-channel" @click=${() => this.reset(state)}>Reset</button>
            </div>
            ${state.error ? html`<p class="error">${state.error}</p>` : nothing}
          </div>`
        : nothing}
    </li>`;
  }

  private windowInput(
    state: ChannelState,
    key: "min" | "max",
    label: string,
    lo: number,
    hi: number,
    step: number,
  ): TemplateResult {
    const value = state.settings[key];
    const set = (e: Event) => {
      const v = Number((e.target as HTMLInputElement).value);
      if (Number.isFinite(v)) this.change(state, { [key]: v });
    };
    return html`<label class="slider"
      >${label}
      <input type="range" min=${lo} max=${hi} step=${step} data-testid="channel-${key}-slider"
        .value=${live(String(value))} @input=${set} />
      <input type="number" class="num" min=${lo} max=${hi} data-testid="channel-${key}"
        .value=${live(String(round(value)))} @change=${set} />
    </label>`;
  }

  private async rename(state: ChannelState, name: string): Promise<void> {
    state.renaming = false;
    try {
      await this.context.api.renameChannel(this.context.experimentId, state.channel.id, name);
      state.channel.name = (await this.context.api.channels(this.context.experimentId)).find(
        (c) => c.id === state.channel.id,
      )?.name ?? name;
      state.error = "";
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    }
    this.context.saveSettings();
    this.context.changed();
  }
}

async function addToHistogram(url: string, histogram: Float64Array): Promise<void> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`tile request failed (${response.status})`);
  const bitmap = await createImageBitmap(await response.blob());
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context2d = canvas.getContext("2d");
  if (!context2d) throw new Error("no 2D canvas");
  context2d.drawImage(bitmap, 0, 0);
  const data = context2d.getImageData(0, 0, bitmap.width, bitmap.height).data;
  for (let i = 0; i < data.length; i += 4) histogram[data[i]] += 1;
}

/** Values (0..255) below which the given percentages of a histogram's counts lie. */
export function percentiles(histogram: Float64Array, which: number[]): number[] {
  const total = histogram.reduce((a, b) => a + b, 0);
  return which.map((p) => {
    if (total === 0) return p < 50 ? 0 : 255;
    const target = (p / 100) * total;
    let sum = 0;
    for (let v = 0; v < histogram.length; v++) {
      sum += histogram[v];
      if (sum >= target) return v;
    }
    return histogram.length - 1;
  });
}
