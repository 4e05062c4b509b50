// Selections: named sets of objects of one type, stored on the server per user and experiment.
// One selection is active at a time; a click on an object of its type toggles the object in it
// and drops (or lifts) a marker where the user clicked.

import { html, nothing, type TemplateResult } from "lit-html";
import Feature from "ol/Feature";
import Point from "ol/geom/Point";
import VectorLayer from "ol/layer/Vector";
import VectorSource from "ol/source/Vector";
import { Icon, Style } from "ol/style";
import type { Coordinate } from "ol/coordinate";
import type { MapobjectType, Selection } from "../api/types";
import { SELECTION_COLORS } from "./colormaps";
import type { ViewerContext } from "./context";
import { isStatic } from "./objects";
import { clearIcon, downloadIcon, trashIcon } from "../ui/icons";

export interface SelectionState {
  selection: Selection;
  /** mapobject id → marker */
  members: Map<number, Feature<Point>>;
  renaming: boolean;
}

function markerIcon(color: string): Style {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="22" height="32" viewBox="0 0 22 32">` +
    `<path d="M11 31 C11 31 1 17 1 11 A10 10 0 1 1 21 11 C21 17 11 31 11 31 Z" fill="${color}" ` +
    `stroke="#000" stroke-width="1.2"/><circle cx="11" cy="11" r="3.5" fill="#fff"/></svg>`;
  return new Style({
    image: new Icon({ src: `data:image/svg+xml;utf8,${encodeURIComponent(svg)}`, anchor: [0.5, 1] }),
  });
}

export class Selections {
  private states: SelectionState[] = [];
  activeTypeId: string | null;
  activeId: string | null = null;
  private readonly markers = new VectorSource();
  private readonly markerLayer: VectorLayer;
  error = "";

  constructor(
    private readonly context: ViewerContext,
    private readonly types: MapobjectType[],
    private readonly onActivate: (typeId: string) => void,
  ) {
    this.activeTypeId = (types.find((t) => !isStatic(t)) ?? types[0])?.id ?? null;
    this.markerLayer = new VectorLayer({ source: this.markers, zIndex: 1000, properties: { markers: true } });
    context.map.addLayer(this.markerLayer);
  }

  async load(): Promise<void> {
    const { api, experimentId } = this.context;
    try {
      const selections = await api.selections(experimentId);
      this.states = await Promise.all(
        selections.map(async (selection) => {
          const detail = await api.selection(experimentId, selection.id);
          const state: SelectionState = { selection, members: new Map(), renaming: false };
          for (const m of detail.members) this.addMarker(state, Number(m.mapobject_id), [m.x, -m.y]);
          return state;
        }),
      );
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  ofType(typeId: string): SelectionState[] {
    return this.states.filter((s) => s.selection.mapobject_type_id === typeId);
  }

  active(): SelectionState | undefined {
    return this.states.find((s) => s.selection.id === this.activeId);
  }

  private addMarker(state: SelectionState, id: number, coordinate: Coordinate): void {
    const marker = new Feature(new Point(coordinate));
    marker.setStyle(markerIcon(state.selection.color));
    marker.set("selection", state.selection.id);
    this.markers.addFeature(marker);
    state.members.set(id, marker);
  }

  /** Toggle an object of the active selection's type; `coordinate` is where the user clicked. */
  async toggle(mapobjectId: number, coordinate: Coordinate): Promise<void> {
    const state = this.active();
    if (!state) return;
    const { api, experimentId } = this.context;
    const had = state.members.get(mapobjectId);
    try {
      if (had) {
        this.markers.removeFeature(had);
        state.members.delete(mapobjectId);
        await api.changeMembers(experimentId, state.selection.id, [], [mapobjectId]);
      } else {
        this.addMarker(state, mapobjectId, coordinate);
        // members are stored in pixel rows (y down), as the CSV export gives them
        const [x, y] = [Math.round(coordinate[0]), Math.round(-coordinate[1])];
        await api.changeMembers(experimentId, state.selection.id, [{ mapobject_id: mapobjectId, x, y }], []);
      }
      state.selection.count = state.members.size;
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      await this.load(); // back to what the server has
    }
    this.context.changed();
  }

  private async create(): Promise<void> {
    const typeId = this.activeTypeId;
    if (!typeId) return;
    const taken = new Set(this.ofType(typeId).map((s) => s.selection.name));
    let n = 0;
    while (taken.has(`Selection #${n}`)) n++;
    const used = this.states.length;
    const color = SELECTION_COLORS[used % SELECTION_COLORS.length];
    try {
      const selection = await this.context.api.createSelection(
        this.context.experimentId, typeId, `Selection #${n}`, color,
      );
      this.states.push({ selection: { ...selection, count: 0 }, members: new Map(), renaming: false });
      this.activate(selection.id);
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  activate(selectionId: string | null): void {
    this.activeId = this.activeId === selectionId ? null : selectionId;
    const state = this.active();
    if (state) this.onActivate(state.selection.mapobject_type_id);
    this.context.changed();
  }

  private async remove(state: SelectionState): Promise<void> {
    try {
      await this.context.api.deleteSelection(this.context.experimentId, state.selection.id);
      for (const marker of state.members.values()) this.markers.removeFeature(marker);
      this.states = this.states.filter((s) => s !== state);
      if (this.activeId === state.selection.id) this.activeId = null;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  private async clear(state: SelectionState): Promise<void> {
    const ids = [...state.members.keys()];
    try {
      await this.context.api.changeMembers(this.context.experimentId, state.selection.id, [], ids);
      for (const marker of state.members.values()) this.markers.removeFeature(marker);
      state.members.clear();
      state.selection.count = 0;
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  private async rename(state: SelectionState, name: string): Promise<void> {
    state.renaming = false;
    try {
      await this.context.api.updateSelection(this.context.experimentId, state.selection.id, { name });
      state.selection.name = name;
      this.error = "";
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.context.changed();
  }

  private async exportCsv(state: SelectionState): Promise<void> {
    try {
      const blob = await this.context.api.selectionCsv(this.context.experimentId, state.selection.id);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `${state.selection.name.replace(/[^\w.-]+/g, "_")}.csv`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
      this.context.changed();
    }
  }

  template(): TemplateResult {
    const typeId = this.activeTypeId;
    const rows = typeId ? this.ofType(typeId) : [];
    return html`<section class="panel" data-testid="selections-panel">
      <h3>Selections</h3>
      ${this.types.length === 0
        ? html`<p class="muted">No objects to select.</p>`
        : html`<div class="row">
              <label class="compact">Object type
                <select data-testid="selection-type" @change=${(e: Event) => {
                  this.activeTypeId = (e.target as HTMLSelectElement).value;
                  this.activeId = null;
                  this.onActivate(this.activeTypeId);
                  this.context.changed();
                }}>
                  ${this.types.map((t) => html`<option value=${t.id} ?selected=${t.id === typeId}>${t.name}</option>`)}
                </select>
              </label>
              <button data-testid="new-selection" title="New selection" @click=${() => void this.create()}>+ New</button>
            </div>
            <ul class="layers">
              ${rows.map((s) => this.row(s))}
            </ul>
            ${rows.length ? html`<p class="hint">Click objects on the map to add or remove them from the active selection.</p>` : nothing}`}
      ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
    </section>`;
  }

  private row(state: SelectionState): TemplateResult {
    const active = state.selection.id === this.activeId;
    return html`<li class="layer-row ${active ? "active" : ""}" data-testid="selection-row"
        data-name=${state.selection.name}>
      <div class="row">
        <span class="flag" style="background:${state.selection.color}"></span>
        <label class="compact"><input type="radio" name="active-selection" data-testid="selection-active"
          .checked=${active} @click=${() => this.activate(state.selection.id)} />active</label>
        ${state.renaming
          ? html`<input class="inline" .value=${state.selection.name} @keydown=${(e: KeyboardEvent) => {
              if (e.key === "Enter") void this.rename(state, (e.target as HTMLInputElement).value);
            }} />`
          : html`<span class="name" @dblclick=${() => {
              state.renaming = true;
              this.context.changed();
            }}>${state.selection.name}</span>`}
        <span class="count" data-testid="selection-count">${state.members.size}</span>
        <button class="icon" title="Export as CSV" @click=${() => void this.exportCsv(state)}>${downloadIcon}</button>
        <button class="icon" title="Clear" @click=${() => void this.clear(state)}>${clearIcon}</button>
        <button class="icon" title="Delete" @click=${() => void this.remove(state)}>${trashIcon}</button>
      </div>
    </li>`;
  }
}
