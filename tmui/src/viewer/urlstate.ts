// The view in the URL (centre, zoom, plane, visible channels and objects), so it can be shared.

export interface ViewState {
  center: [number, number] | null;
  zoom: number | null;
  tpoint: number;
  zplane: number;
  channels: string[] | null;
  objects: string[] | null;
}

function list(value: string | null): string[] | null {
  return value === null ? null : value.split(",").filter(Boolean).map(decodeURIComponent);
}

export function readViewState(query: URLSearchParams): ViewState {
  const number = (key: string) => {
    const value = query.get(key);
    return value === null || value === "" || !Number.isFinite(Number(value)) ? null : Number(value);
  };
  const x = number("x");
  const y = number("y");
  return {
    center: x !== null && y !== null ? [x, -y] : null,
    zoom: number("zoom"),
    tpoint: number("t") ?? 0,
    zplane: number("z") ?? 0,
    channels: list(query.get("channels")),
    objects: list(query.get("objects")),
  };
}

export function writeViewState(state: ViewState, keep: URLSearchParams): string {
  const query = new URLSearchParams();
  if (keep.get("test")) query.set("test", keep.get("test") as string);
  if (state.center) {
    query.set("x", String(Math.round(state.center[0])));
    query.set("y", String(Math.round(-state.center[1])));
  }
  if (state.zoom !== null) query.set("zoom", String(Math.round(state.zoom * 100) / 100));
  if (state.tpoint) query.set("t", String(state.tpoint));
  if (state.zplane) query.set("z", String(state.zplane));
  query.set("channels", (state.channels ?? []).map(encodeURIComponent).join(","));
  query.set("objects", (state.objects ?? []).map(encodeURIComponent).join(","));
  return query.toString().replace(/%2C/g, ",");
}
