// The viewer screen: the whole experiment as one zoomable map, with the channel, object,
// selection and result panels, the tool windows, z/t sliders, readout, legends and export.

import { html, nothing, type TemplateResult } from "lit-html";
import { ref } from "lit-html/directives/ref.js";
import Map from "ol/Map";
import View from "ol/View";
import { defaults as defaultControls, OverviewMap } from "ol/control";
import TileLayer from "ol/layer/Tile";
import XYZ from "ol/source/XYZ";
import VectorTileLayer from "ol/layer/VectorTile";
import type MapBrowserEvent from "ol/MapBrowserEvent";
import type { Api } from "../api/client";
import { ApiError } from "../api/client";
import type { Session } from "../api/session";
import type { Channel, Experiment, Layout, MapobjectInfo, MapobjectType } from "../api/types";
import { Channels, type ChannelSettings } from "./channels";
import { gradientCss } from "./colormaps";
import type { Plane, ViewerContext } from "./context";
import { composeView } from "./export";
import { pixelGrid, type PixelGrid } from "./grid";
import { featureId, isStatic, Objects, type ObjectSettings } from "./objects";
import { placeAt, type Place } from "./readout";
import { Results, type Legend } from "./results";
import { scaleBar } from "./scalebar";
import { Selections } from "./selections";
import { Tools } from "./tools";
import { experimentNav } from "../ui/experimentnav";
import { readViewState, writeViewState, type ViewState } from "./urlstate";
import { targetIcon } from "../ui/icons";

interface Saved {
  channels?: Record<string, Partial<ChannelSettings>>;
  objects?: Record<string, Partial<ObjectSettings>>;
}

interface Hover {
  x: number;
  y: number;
  place: Place | null;
  intensities: { name: string; value: number | null }[];
}

interface Info {
  mapobjectId: number;
  type: string;
  data: MapobjectInfo | null;
  error: string;
}

/** Refresh the tile token this long before it expires. */
const TOKEN_MARGIN_S = 300;

declare global {
  interface Window {
    /** Test hook: resolves after the next complete render of the map. */
    __tmViewer?: { whenRendered(): Promise<void>; map: Map };
    /** Milliseconds from navigation start to the map's first complete render. */
    __tmFirstRender?: number;
  }
}

export class ViewerScreen {
  private experiment: Experiment | null = null;
  private error = "";
  private status = "Loading the experiment…";
  private map: Map | null = null;
  private grid: PixelGrid | null = null;
  private channels: Channels | null = null;
  private objects: Objects | null = null;
  private selections: Selections | null = null;
  private results: Results | null = null;
  private tools: Tools | null = null;
  private types: MapobjectType[] = [];
  private plane: Plane;
  private planes: { tpoints: number[]; zplanes: number[] } = { tpoints: [0], zplanes: [0] };
  private token = "";
  private tokenTimer = 0;
  private hover: Hover | null = null;
  private info: Info | null = null;
  private layout: Layout | null = null;
  private layoutRequested = false;
  private scaleText = "";
  private scalePixels = 0;
  private readonly view: ViewState;
  private readonly testMode: boolean;
  private disposed = false;
  private mapElement: HTMLElement | null = null;
  private readonly settingsKey: string;

  constructor(
    private readonly api: Api,
    private readonly session: Session,
    private readonly experimentId: string,
    query: URLSearchParams,
    private readonly changed: () => void,
  ) {
    this.view = readViewState(query);
    this.testMode = query.get("test") === "1";
    this.plane = { tpoint: this.view.tpoint, zplane: this.view.zplane };
    this.settingsKey = `tm.viewer.${session.user}.${experimentId}`;
    void this.start();
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.tokenTimer);
    this.map?.setTarget(undefined);
    this.map?.dispose();
    delete window.__tmViewer;
  }

  private fail(err: unknown): void {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) {
      this.error = `You cannot open experiment ${this.experimentId}: ${err.message}`;
    } else {
      this.error = err instanceof Error ? err.message : String(err);
    }
    this.status = "";
    this.changed();
  }

  private async refreshToken(): Promise<void> {
    const { token, expiresIn } = await this.api.tileToken();
    this.token = token;
    window.clearTimeout(this.tokenTimer);
    this.tokenTimer = window.setTimeout(
      () => void this.refreshToken().catch((err) => this.fail(err)),
      Math.max(10, expiresIn - TOKEN_MARGIN_S) * 1000,
    );
  }

  private async start(): Promise<void> {
    let channels: Channel[];
    try {
      const [experiment, channelList, types] = await Promise.all([
        this.api.experiment(this.experimentId),
        this.api.channels(this.experimentId),
        this.api.mapobjectTypes(this.experimentId),
        this.refreshToken(),
      ]);
      this.experiment = experiment;
      channels = channelList;
      this.types = types;
      document.title = `${experiment.name} · TissueMAPS`;
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.disposed) return;
    const withPyramid = channels.flatMap((c) => c.layers).find((l) => l.max_zoom !== null && l.image_size.width);
    if (!withPyramid) {
      this.status = "";
      this.error =
        channels.length === 0
          ? "This experiment has no images yet: upload them and run the workflow."
          : "This experiment has no pyramids yet: run the workflow's pyramid_creation stage to view it.";
      this.changed();
      return;
    }
    const { width, height } = withPyramid.image_size as { width: number; height: number };
    this.grid = pixelGrid(width, height, withPyramid.max_zoom as number);
    this.planes = {
      tpoints: [...new Set(channels.flatMap((c) => c.layers.map((l) => l.tpoint)))].sort((a, b) => a - b),
      zplanes: [...new Set(channels.flatMap((c) => c.layers.map((l) => l.zplane)))].sort((a, b) => a - b),
    };
    this.status = "";
    this.changed();
    // the map element exists after this render
    await new Promise((resolve) => requestAnimationFrame(resolve));
    if (this.disposed || !this.mapElement) return;
    this.buildMap(channels);
  }

  private loadSaved(): Saved {
    try {
      return JSON.parse(localStorage.getItem(this.settingsKey) ?? "{}") as Saved;
    } catch {
      return {};
    }
  }

  private saveSettings(): void {
    const saved: Saved = {
      channels: this.channels?.savedSettings(),
      objects: this.objects?.savedSettings(),
    };
    localStorage.setItem(this.settingsKey, JSON.stringify(saved));
    this.writeUrl();
  }

  private buildMap(channels: Channel[]): void {
    const grid = this.grid as PixelGrid;
    const extent = grid.projection.getExtent();
    const view = new View({
      projection: grid.projection,
      resolutions: grid.resolutions,
      extent,
      constrainOnlyCenter: true,
      showFullExtent: true,
    });
    const overview = new OverviewMap({
      collapsed: true,
      layers: [new TileLayer({ source: this.overviewSource(channels[0]) })],
      view: new View({ projection: grid.projection, resolutions: grid.resolutions }),
      tipLabel: "Overview",
    });
    const map = new Map({
      target: this.mapElement as HTMLElement,
      view,
      controls: defaultControls({ attribution: false, rotate: false }).extend([overview]),
    });
    this.map = map;
    const context: ViewerContext = {
      api: this.api,
      experimentId: this.experimentId,
      user: this.session.user,
      map,
      grid,
      tileToken: () => this.token,
      plane: () => this.plane,
      changed: () => this.changed(),
      saveSettings: () => this.saveSettings(),
      testMode: this.testMode,
    };
    const saved = this.loadSaved();
    this.channels = new Channels(context, channels, saved.channels ?? {}, this.view.channels);
    this.objects = new Objects(context, this.types, saved.objects ?? {}, this.view.objects);
    this.selections = new Selections(context, this.types, (typeId) => this.objects?.show(typeId));
    this.results = new Results(context, this.types);
    this.tools = new Tools(context, this.types, this.selections, (result) => this.results?.addCurrent(result));
    this.syncLayers();
    if (this.view.center && this.view.zoom !== null) {
      view.setCenter(this.view.center);
      view.setZoom(this.view.zoom);
    } else {
      this.resetView();
    }
    map.on("moveend", () => {
      this.updateScale();
      this.writeUrl();
      this.changed();
    });
    map.on("pointermove", (event) => this.onHover(event as MapBrowserEvent<PointerEvent>));
    map.on("singleclick", (event) => void this.onClick(event as MapBrowserEvent<PointerEvent>));
    map.once("rendercomplete", () => (window.__tmFirstRender = performance.now()));
    window.__tmViewer = {
      map,
      whenRendered: () =>
        new Promise<void>((resolve) => {
          map.once("rendercomplete", () => resolve());
          map.render();
        }),
    };
    void this.selections.load();
    void this.results.load();
    void this.tools.load();
    this.changed();
  }

  private overviewSource(channel: Channel | undefined): XYZ | undefined {
    const layer = channel?.layers[0];
    const grid = this.grid as PixelGrid;
    if (!layer) return undefined;
    return new XYZ({
      projection: grid.projection,
      tileGrid: grid.tileGrid,
      tileUrlFunction: ([z, x, y]) =>
        `/api/experiments/${this.experimentId}/channel_layers/${layer.id}/tiles?x=${x}&y=${y}&z=${z}` +
        `&access_token=${this.token}`,
    });
  }

  private resetView(): void {
    const grid = this.grid;
    if (!grid || !this.map) return;
    this.map.getView().fit(grid.projection.getExtent(), { padding: [10, 10, 10, 10] });
  }

  private syncLayers(): void {
    this.channels?.sync();
    this.objects?.sync();
    this.results?.sync();
  }

  private setPlane(change: Partial<Plane>): void {
    this.plane = { ...this.plane, ...change };
    this.syncLayers();
    this.writeUrl();
    this.changed();
  }

  private writeUrl(): void {
    const map = this.map;
    if (!map) return;
    const view = map.getView();
    const center = view.getCenter();
    const state: ViewState = {
      center: center ? [center[0], center[1]] : null,
      zoom: view.getZoom() ?? null,
      tpoint: this.plane.tpoint,
      zplane: this.plane.zplane,
      channels: this.channels?.visibleNames() ?? null,
      objects: this.objects?.visibleNames() ?? null,
    };
    const query = writeViewState(state, new URLSearchParams(location.search));
    history.replaceState(null, "", `${location.pathname}?${query}`);
  }

  private updateScale(): void {
    const resolution = this.map?.getView().getResolution();
    if (!resolution) return;
    const bar = scaleBar(resolution, this.experiment?.pixel_size_um ?? null);
    this.scaleText = bar.label;
    this.scalePixels = bar.pixels;
  }

  private onHover(event: MapBrowserEvent<PointerEvent>): void {
    if (event.dragging || !this.channels) return;
    const [cx, cy] = event.coordinate;
    const x = Math.floor(cx);
    const y = Math.floor(-cy);
    if (!this.layoutRequested) {
      this.layoutRequested = true;
      this.api.layout(this.experimentId).then(
        (layout) => (this.layout = layout),
        () => (this.layoutRequested = false),
      );
    }
    const place = this.layout ? placeAt(this.layout, x, y) : null;
    // outside the sites nothing was imaged: the tiles' black there is no intensity
    const imaged = !this.layout || place?.site;
    const intensities = this.channels.readout(event.pixel);
    this.hover = {
      x,
      y,
      place,
      intensities: imaged ? intensities : intensities.map((i) => ({ ...i, value: null })),
    };
    this.changed();
  }

  private async onClick(event: MapBrowserEvent<PointerEvent>): Promise<void> {
    const map = this.map;
    const objects = this.objects;
    const selections = this.selections;
    if (!map || !objects || !selections) return;
    const activeType = selections.active()?.selection.mapobject_type_id;
    const hits: { id: number; typeId: string; typeName: string }[] = [];
    map.forEachFeatureAtPixel(
      event.pixel,
      (feature, layer) => {
        const typeName = layer.get("mapobjectType") as string;
        const state = objects.states.find((s) => s.type.name === typeName);
        if (state) hits.push({ id: featureId(feature), typeId: state.type.id, typeName });
      },
      {
        hitTolerance: 2,
        layerFilter: (layer) => layer instanceof VectorTileLayer && !!layer.get("mapobjectType"),
      },
    );
    // the active selection's type first, then segmented objects before plates, wells and sites
    const fixed = (typeId: string) => {
      const type = this.types.find((t) => t.id === typeId);
      return type ? isStatic(type) : false;
    };
    hits.sort(
      (a, b) =>
        Number(b.typeId === activeType) - Number(a.typeId === activeType) ||
        Number(fixed(a.typeId)) - Number(fixed(b.typeId)),
    );
    const hit = hits[0];
    if (!hit) {
      this.closeInfo();
      return;
    }
    if (activeType && hit.typeId === activeType) await selections.toggle(hit.id, event.coordinate);
    // shown in the side bar: a popup on the map would cover the next object to click
    this.info = { mapobjectId: hit.id, type: hit.typeName, data: null, error: "" };
    this.changed();
    try {
      const data = await this.api.mapobjectInfo(this.experimentId, String(hit.id));
      if (this.info?.mapobjectId === hit.id) this.info.data = data;
    } catch (err) {
      if (this.info) this.info.error = err instanceof Error ? err.message : String(err);
    }
    this.changed();
  }

  private closeInfo(): void {
    this.info = null;
    this.changed();
  }

  private legends(): Legend[] {
    return [...(this.objects?.legends() ?? []), ...(this.results?.legends() ?? [])];
  }

  private async exportPng(): Promise<void> {
    const map = this.map;
    const resolution = map?.getView().getResolution();
    if (!map || !resolution) return;
    const bar = scaleBar(resolution, this.experiment?.pixel_size_um ?? null);
    const canvas = await composeView(map, bar, this.legends());
    canvas.toBlob((blob) => {
      if (!blob) return;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `${this.experiment?.name ?? "view"}.png`;
      link.dataset.testid = "export-link";
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    }, "image/png");
  }

  template(): TemplateResult {
    return html`${experimentNav(this.experimentId, "viewer", this.experiment?.name ?? "")}
      <div class="viewer" data-testid="viewer">
      ${this.tools?.buttons() ?? html`<nav class="toolbar-vertical"></nav>`}
      <div class="map-column">
        ${this.error
          ? html`<div class="viewer-message error" role="alert" data-testid="viewer-error">
              <p>${this.error}</p>
              <p><a href="/experiments" data-link>Back to the experiments</a></p>
            </div>`
          : nothing}
        ${this.status ? html`<div class="viewer-message" data-testid="viewer-status">${this.status}</div>` : nothing}
        <div class="map" data-testid="map" ${ref((el) => (this.mapElement = (el as HTMLElement) ?? null))}>
          ${this.map ? this.overlays() : nothing}
        </div>
        ${this.map ? this.bottomBar() : nothing}
        ${this.tools?.windowsTemplate() ?? nothing}
      </div>
      <aside class="sidebar" data-testid="sidebar">
        ${this.map
          ? html`${this.infoTemplate()} ${this.channels?.template()} ${this.objects?.template()} ${this.selections?.template()}
            ${this.results?.template()}`
          : nothing}
      </aside>
    </div>`;
  }

  private overlays(): TemplateResult {
    const hover = this.hover;
    return html`<div class="map-overlays">
      <button class="reset-view" title="Reset view" data-testid="reset-view" @click=${() => this.resetView()}>${targetIcon}</button>
      <button class="export" title="Export the view as PNG" data-testid="export-png" @click=${() => void this.exportPng()}>
        PNG
      </button>
      <div class="scalebar" data-testid="scalebar">
        <div class="bar" style="width:${this.scalePixels}px"></div>
        <span>${this.scaleText}</span>
      </div>
      <div class="legends" data-testid="legends">${this.legends().map((l) => this.legendTemplate(l))}</div>
      ${hover
        ? html`<div class="readout" data-testid="readout">
            <div>x ${hover.x}, y ${hover.y}</div>
            ${hover.place
              ? html`<div>
                  plate ${hover.place.plate}, well ${hover.place.well}${hover.place.site
                    ? html`, site ${hover.place.site.y},${hover.place.site.x}`
                    : nothing}
                </div>`
              : nothing}
            ${hover.intensities.map((i) => html`<div>${i.name}: ${i.value ?? "–"}</div>`)}
          </div>`
        : nothing}
    </div>`;
  }

  private legendTemplate(legend: Legend): TemplateResult {
    return html`<div class="legend" data-testid="legend">
      <div class="title">${legend.title}</div>
      ${legend.entries
        ? legend.entries.map(
            (e) => html`<div class="entry"><span class="flag" style="background:${e.color}"></span>${e.label}
              <span class="muted">(${e.count})</span></div>`,
          )
        : html`<div class="colorbar" style="background:${gradientCss(legend.colormap ?? "viridis")}"></div>
            <div class="range"><span>${legend.low?.toPrecision(3)}</span><span>${legend.high?.toPrecision(3)}</span></div>`}
    </div>`;
  }

  private bottomBar(): TemplateResult {
    const slider = (label: string, values: number[], value: number, set: (v: number) => void) =>
      values.length > 1
        ? html`<label class="plane-slider">${label} ${value}
            <input type="range" min=${values[0]} max=${values[values.length - 1]} step="1" .value=${String(value)}
              data-testid="slider-${label}" @input=${(e: Event) => set(Number((e.target as HTMLInputElement).value))} />
          </label>`
        : nothing;
    return html`<div class="bottom-bar" data-testid="bottom-bar">
      ${slider("z", this.planes.zplanes, this.plane.zplane, (zplane) => this.setPlane({ zplane }))}
      ${slider("t", this.planes.tpoints, this.plane.tpoint, (tpoint) => this.setPlane({ tpoint }))}
      <span class="muted">${this.experiment?.name ?? ""}</span>
    </div>`;
  }

  private infoTemplate(): TemplateResult | typeof nothing {
    const info = this.info;
    if (!info) return nothing;
    const data = info.data;
    const skip = new Set(["feature_values", "mapobject_type"]);
    return html`<section class="panel object-info" data-testid="object-info">
      <header>
        <b>${info.type} ${info.mapobjectId}</b>
        <button class="icon" title="Close" @click=${() => this.closeInfo()}>&times;</button>
      </header>
      ${info.error ? html`<p class="error">${info.error}</p>` : nothing}
      ${data
        ? html`<table>
            ${Object.entries(data)
              .filter(([k]) => !skip.has(k))
              .map(([k, v]) => html`<tr><th>${k}</th><td>${String(v)}</td></tr>`)}
            ${Object.entries(data.feature_values ?? {}).map(
              ([k, v]) => html`<tr class="feature"><th>${k}</th><td>${v === null ? "–" : Number(v).toPrecision(5)}</td></tr>`,
            )}
          </table>`
        : html`<p class="muted">Loading…</p>`}
    </section>`;
  }
}
