// A small history router: a table of path patterns to screens, and one optional guard that a
// screen registers to be asked before the app leaves it (e.g. for unsaved changes).

export interface Route {
  name: string;
  params: Record<string, string>;
  query: URLSearchParams;
}

/** Asked before the app leaves the current screen: true (or a promise of true) lets it go. */
export type LeaveGuard = () => boolean | Promise<boolean>;

const PATTERNS: [string, RegExp][] = [
  ["login", /^\/login\/?$/],
  ["experiments", /^\/(experiments\/?)?$/],
  ["viewer", /^\/viewer\/(?<experimentId>\d+)\/?$/],
  ["upload", /^\/experiments\/(?<experimentId>\d+)\/upload\/?$/],
  ["workflow", /^\/experiments\/(?<experimentId>\d+)\/workflow\/?$/],
  ["pipeline", /^\/experiments\/(?<experimentId>\d+)\/pipeline\/?$/],
];

let guard: LeaveGuard | null = null;
/** The address the app last went to (where a refused back or forward returns). */
let here = location.pathname + location.search;

export function parseRoute(location: Location): Route | null {
  for (const [name, pattern] of PATTERNS) {
    const match = pattern.exec(location.pathname);
    if (match) {
      return { name, params: { ...match.groups }, query: new URLSearchParams(location.search) };
    }
  }
  return null;
}

/** Sets the guard asked before leaving; answers the function that removes it again. */
export function setLeaveGuard(leave: LeaveGuard): () => void {
  guard = leave;
  return () => {
    if (guard === leave) guard = null;
  };
}

/** Whether the current screen lets the app leave it (true when it set no guard). */
export function mayLeave(): boolean | Promise<boolean> {
  return guard === null ? true : guard();
}

/** Goes to `path`, once the current screen's guard agrees (`force`: without asking). */
export function navigate(path: string, replace = false, force = false): void {
  const go = () => {
    if (replace) history.replaceState(null, "", path);
    else history.pushState(null, "", path);
    here = location.pathname + location.search;
    window.dispatchEvent(new PopStateEvent("popstate"));
  };
  const answer = force ? true : mayLeave();
  if (answer === true) go();
  else if (answer !== false) void answer.then((yes) => yes && go());
}

/** For a "popstate" listener: whether the browser's back or forward may change the screen.
 * When the guard refuses, the address goes back to where the app is (and the answer is false). */
export function acceptHistoryMove(): boolean | Promise<boolean> {
  const there = location.pathname + location.search;
  const settle = (yes: boolean) => {
    if (yes) here = there;
    else history.pushState(null, "", here);
    return yes;
  };
  if (there === here) return true;
  const answer = mayLeave();
  return typeof answer === "boolean" ? settle(answer) : answer.then(settle);
}
