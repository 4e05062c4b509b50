// What every part of the viewer shares: the experiment, the map, the API, the plane shown.

import type Map from "ol/Map";
import type BaseLayer from "ol/layer/Base";
import type { Api } from "../api/client";
import type { PixelGrid } from "./grid";

export interface Plane {
  tpoint: number;
  zplane: number;
}

export interface ViewerContext {
  api: Api;
  experimentId: string;
  user: string;
  map: Map;
  grid: PixelGrid;
  /** The token tile URLs carry (browsers send no headers with tile requests). */
  tileToken(): string;
  plane(): Plane;
  /** Redraw the side panels (state changed). */
  changed(): void;
  /** Remember the view's settings (channels, objects) for this user and experiment. */
  saveSettings(): void;
  /** Tests set `?test=1`: no tile fade-in, so pixels are final when rendering completes. */
  testMode: boolean;
}

export function tileTransition(context: ViewerContext): number | undefined {
  return context.testMode ? 0 : undefined;
}

/** A map layer shown for one source layer (of the plane on view) at a time. */
export interface PlaneLayer<L extends BaseLayer> {
  layer: L | null;
  /** id of the source layer `layer` shows ("" for none) */
  layerKey: string;
}

/** Put the map layer for source layer `key` in `holder` (made by `make`), replacing the
 * one of another plane; "" removes it. */
export function showPlane<L extends BaseLayer>(
  map: Map,
  holder: PlaneLayer<L>,
  key: string,
  make: () => L,
): void {
  if (holder.layerKey === key) return;
  if (holder.layer) map.removeLayer(holder.layer);
  holder.layer = key ? make() : null;
  holder.layerKey = key;
  if (holder.layer) map.addLayer(holder.layer);
}
