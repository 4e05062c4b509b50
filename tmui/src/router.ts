// A small history router: a table of path patterns to screens.

export interface Route {
  name: string;
  params: Record<string, string>;
  query: URLSearchParams;
}

const PATTERNS: [string, RegExp][] = [
  ["login", /^\/login\/?$/],
  ["experiments", /^\/(experiments\/?)?$/],
  ["viewer", /^\/viewer\/(?<experimentId>\d+)\/?$/],
  ["upload", /^\/experiments\/(?<experimentId>\d+)\/upload\/?$/],
  ["workflow", /^\/experiments\/(?<experimentId>\d+)\/workflow\/?$/],
  ["pipeline", /^\/experiments\/(?<experimentId>\d+)\/pipeline\/?$/],
];

export function parseRoute(location: Location): Route | null {
  for (const [name, pattern] of PATTERNS) {
    const match = pattern.exec(location.pathname);
    if (match) {
      return { name, params: { ...match.groups }, query: new URLSearchParams(location.search) };
    }
  }
  return null;
}

export function navigate(path: string, replace = false): void {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}
