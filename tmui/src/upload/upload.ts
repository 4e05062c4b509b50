// The upload screen of an experiment: its plates and acquisitions, and (with
// `?acquisition=ID` in the address) one acquisition's upload page.
//
// Acquisition pages stay alive while the user goes back to the list, so an upload goes on;
// leaving the screen cancels what is in flight, and closing or reloading the tab asks first.

import { html, type TemplateResult } from "lit-html";
import type { Api } from "../api/client";
import type { Acquisition } from "../api/types";
import { errorLine } from "../ui/dialog";
import { experimentNav } from "../ui/experimentnav";
import { AcquisitionPage } from "./acquisition";
import { describeError } from "./format";
import { PlatesView } from "./plates";

export class UploadScreen {
  private name = "";
  private error = "";
  private readonly plates: PlatesView;
  private readonly pages = new Map<string, AcquisitionPage>();
  /** the acquisition shown, or null for the list (undefined before the first drawing) */
  private shown: string | null | undefined = undefined;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    private readonly changed: () => void,
  ) {
    this.plates = new PlatesView(api, experimentId, changed, (a) => this.acquisitionHref(a));
    window.addEventListener("beforeunload", this.beforeUnload);
    void this.loadExperiment();
  }

  private get listHref(): string {
    return `/experiments/${this.experimentId}/upload`;
  }

  private acquisitionHref(a: Acquisition): string {
    return `${this.listHref}?acquisition=${a.id}`;
  }

  private async loadExperiment(): Promise<void> {
    try {
      this.name = (await this.api.experiment(this.experimentId)).name;
      document.title = `Upload · ${this.name} · TissueMAPS`;
    } catch (err) {
      this.error = describeError(err);
    }
    this.changed();
  }

  private beforeUnload = (event: BeforeUnloadEvent) => {
    if ([...this.pages.values()].some((page) => page.queue.active)) {
      event.preventDefault();
      event.returnValue = ""; // older browsers need it set
    }
  };

  /** Follow the address: the list or an acquisition's page. */
  private sync(): void {
    const wanted = new URLSearchParams(location.search).get("acquisition");
    const shown = wanted && /^\d+$/.test(wanted) ? wanted : null;
    if (shown === this.shown) return;
    this.shown = shown;
    if (shown === null) {
      void this.plates.load(); // statuses and counts may have changed
    } else if (this.pages.has(shown)) {
      void this.pages.get(shown)?.load();
    } else {
      this.pages.set(shown, new AcquisitionPage(this.api, this.experimentId, shown, this.changed, this.listHref));
    }
  }

  template(): TemplateResult {
    this.sync();
    const page = this.shown ? this.pages.get(this.shown) : undefined;
    return html`${experimentNav(this.experimentId, "upload", this.name)}
      <main class="page upload" data-testid="upload-screen">
        ${errorLine(this.error)} ${page ? page.template() : this.plates.template()}
      </main>`;
  }

  dispose(): void {
    window.removeEventListener("beforeunload", this.beforeUnload);
    for (const page of this.pages.values()) page.dispose();
    this.pages.clear();
  }
}
