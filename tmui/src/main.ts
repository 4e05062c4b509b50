// The app: session, routing between the screens, and what happens when a token dies.

import "ol/ol.css";
import "./style.css";
import { html, render, type TemplateResult } from "lit-html";
import { Api, ApiError } from "./api/client";
import { clearSession, loadSession, saveSession, secondsLeft, type Session } from "./api/session";
import { acceptHistoryMove, mayLeave, navigate, parseRoute } from "./router";
import { appBar } from "./ui/appbar";
import { ExperimentsScreen } from "./ui/experiments";
import { loginView, type LoginState } from "./ui/login";
import { PipelineScreen } from "./pipeline/pipeline";
import { UploadScreen } from "./upload/upload";
import { ViewerScreen } from "./viewer/viewer";
import { WorkflowScreen } from "./workflow/workflow";

interface Screen {
  template(): TemplateResult;
  dispose?(): void;
}

class App {
  private readonly api = new Api();
  private session: Session | null = loadSession();
  private screen: Screen | null = null;
  private screenKey = "";
  private login: LoginState = { message: "", error: "", busy: false };
  private expiryTimer = 0;

  constructor(private readonly root: HTMLElement) {
    this.api.onUnauthorized = () =>
      this.logout("Your session has expired or was revoked. Please log in again.");
    this.api.setToken(this.session?.token ?? null);
    this.watchExpiry();
    window.addEventListener("popstate", () => {
      // the browser's back and forward ask the screen's leave guard too
      const accepted = acceptHistoryMove();
      if (accepted === true) this.route();
      else if (accepted !== false) void accepted.then((yes) => yes && this.route());
    });
    // in-app links change the route without reloading the page
    root.addEventListener("click", (event) => {
      const link = (event.target as HTMLElement).closest("a[data-link]");
      if (link && !(event as MouseEvent).ctrlKey && !(event as MouseEvent).metaKey) {
        event.preventDefault();
        navigate(link.getAttribute("href") ?? "/");
      }
    });
    this.route();
  }

  private watchExpiry(): void {
    window.clearTimeout(this.expiryTimer);
    const left = this.session ? secondsLeft(this.session.token) : null;
    if (left === null) return;
    this.expiryTimer = window.setTimeout(
      () => this.logout("Your session has expired. Please log in again."),
      Math.max(0, left * 1000),
    );
  }

  private logout(message = ""): void {
    // logging out by hand asks the screen's leave guard; an expired session does not wait
    const answer = message ? true : mayLeave();
    if (answer === true) this.endSession(message);
    else if (answer !== false) void answer.then((yes) => yes && this.endSession(message));
  }

  private endSession(message: string): void {
    clearSession();
    this.session = null;
    this.api.setToken(null);
    window.clearTimeout(this.expiryTimer);
    this.login = { message, error: "", busy: false };
    navigate("/login", false, true);
  }

  private async submitLogin(username: string, password: string): Promise<void> {
    this.login = { ...this.login, busy: true, error: "" };
    this.draw();
    try {
      const token = await this.api.login(username, password);
      this.session = { token, user: username };
      saveSession(this.session);
      this.api.setToken(token);
      this.watchExpiry();
      this.login = { message: "", error: "", busy: false };
      const next = new URLSearchParams(location.search).get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/experiments");
    } catch (err) {
      const message =
        err instanceof ApiError && err.status === 401
          ? "Wrong user name or password."
          : err instanceof Error
            ? err.message
            : String(err);
      this.login = { ...this.login, busy: false, error: message };
      this.draw();
    }
  }

  private route(): void {
    const route = parseRoute(location);
    if (route === null) {
      navigate(this.session ? "/experiments" : "/login", true);
      return;
    }
    if (route.name !== "login" && this.session === null) {
      const next = location.pathname + location.search;
      navigate(`/login?next=${encodeURIComponent(next)}`, true);
      return;
    }
    const key = `${route.name}:${JSON.stringify(route.params)}`;
    if (key !== this.screenKey) {
      this.screen?.dispose?.();
      this.screen = null;
      this.screenKey = key;
      const session = this.session;
      if (route.name === "experiments" && session) {
        this.screen = new ExperimentsScreen(this.api, session.user, () => this.draw());
        document.title = "Experiments · TissueMAPS";
      } else if (route.name === "viewer" && session) {
        this.screen = new ViewerScreen(this.api, session, route.params.experimentId, route.query, () =>
          this.draw(),
        );
      } else if (route.name === "upload" && session) {
        this.screen = new UploadScreen(this.api, route.params.experimentId, () => this.draw());
      } else if (route.name === "workflow" && session) {
        this.screen = new WorkflowScreen(this.api, route.params.experimentId, () => this.draw());
      } else if (route.name === "pipeline" && session) {
        this.screen = new PipelineScreen(this.api, route.params.experimentId, () => this.draw());
      } else {
        document.title = "Log in · TissueMAPS";
      }
    }
    this.draw();
  }

  private draw(): void {
    const session = this.session;
    const body =
      this.screen && session
        ? html`${appBar(session.user, () => this.logout())}${this.screen.template()}`
        : loginView(this.login, (u, p) => void this.submitLogin(u, p));
    render(body, this.root);
  }
}

new App(document.getElementById("app") as HTMLElement);
