// The plates of an experiment with their acquisitions: status, file counts, create, rename,
// delete (confirmed).

import { html, nothing, type TemplateResult } from "lit-html";
import type { Api } from "../api/client";
import type { Acquisition, Plate } from "../api/types";
import { errorLine, modal } from "../ui/dialog";
import { pencilIcon, trashIcon } from "../ui/icons";
import { describeError, statusBadge } from "./format";

type Dialog =
  | { kind: "create-plate"; error: string }
  | { kind: "create-acquisition"; plate: Plate; error: string }
  | { kind: "delete-plate"; plate: Plate; error: string }
  | { kind: "delete-acquisition"; acquisition: Acquisition; error: string }
  | null;

/** What is being renamed inline. */
type Renaming = { kind: "plate" | "acquisition"; id: string } | null;

export class PlatesView {
  plates: Plate[] | null = null;
  /** uploaded (complete) files per acquisition id; absent while loading */
  readonly counts = new Map<string, number>();
  private error = "";
  private dialog: Dialog = null;
  private renaming: Renaming = null;

  constructor(
    private readonly api: Api,
    private readonly experimentId: string,
    private readonly changed: () => void,
    private readonly acquisitionHref: (acquisition: Acquisition) => string,
  ) {}

  private async guard(action: () => Promise<void>, onError: (message: string) => void): Promise<void> {
    try {
      await action();
    } catch (err) {
      onError(describeError(err));
    }
    this.changed();
  }

  load(): Promise<void> {
    return this.guard(
      async () => {
        const plates = await this.api.plates(this.experimentId);
        this.plates = plates;
        this.error = "";
        this.changed();
        const acquisitions = plates.flatMap((p) => p.acquisitions);
        const counts = await Promise.all(
          acquisitions.map((a) => this.api.uploadCount(this.experimentId, a.id)),
        );
        acquisitions.forEach((a, i) => this.counts.set(a.id, counts[i]));
      },
      (message) => (this.error = message),
    );
  }

  private submitDialog(event: SubmitEvent): void {
    event.preventDefault();
    const dialog = this.dialog;
    if (dialog === null) return;
    const data = new FormData(event.target as HTMLFormElement);
    const name = String(data.get("name") ?? "").trim();
    const description = String(data.get("description") ?? "").trim();
    void this.guard(
      async () => {
        if (dialog.kind === "create-plate") {
          await this.api.createPlate(this.experimentId, name, description);
        } else if (dialog.kind === "create-acquisition") {
          await this.api.createAcquisition(this.experimentId, dialog.plate.name, name, description);
        } else if (dialog.kind === "delete-plate") {
          await this.api.deletePlate(this.experimentId, dialog.plate.id);
        } else {
          await this.api.deleteAcquisition(this.experimentId, dialog.acquisition.id);
        }
        this.dialog = null;
        await this.load();
      },
      (message) => (dialog.error = message),
    );
  }

  private rename(kind: "plate" | "acquisition", id: string, old: string, name: string): void {
    if (this.renaming === null) return; // Enter, then the blur of the removed input
    this.renaming = null;
    name = name.trim();
    if (!name || name === old) {
      this.changed();
      return;
    }
    void this.guard(
      async () => {
        if (kind === "plate") await this.api.renamePlate(this.experimentId, id, name);
        else await this.api.renameAcquisition(this.experimentId, id, name);
        await this.load();
      },
      (message) => (this.error = message),
    );
  }

  private open(dialog: Dialog): void {
    this.dialog = dialog;
    this.changed();
  }

  private close = () => {
    this.dialog = null;
    this.changed();
  };

  template(): TemplateResult {
    const plates = this.plates;
    return html`<section class="upload-plates" data-testid="plates">
      <div class="toolbar">
        <h1>Plates</h1>
        <button class="primary" data-testid="add-plate" @click=${() => this.open({ kind: "create-plate", error: "" })}>
          + Add plate
        </button>
      </div>
      <p class="hint">
        Add a plate, then an acquisition of it, and upload the acquisition's microscope files. A plate
        is ready for processing when every file of all its acquisitions is uploaded.
      </p>
      ${errorLine(this.error)}
      ${plates === null
        ? html`<p class="muted">Loading…</p>`
        : plates.length === 0
          ? html`<p class="muted" data-testid="no-plates">No plates yet.</p>`
          : plates.map((plate) => this.plateCard(plate))}
      ${this.dialogTemplate()}
    </section>`;
  }

  private nameCell(
    kind: "plate" | "acquisition",
    id: string,
    name: string,
    shown: TemplateResult,
  ): TemplateResult {
    if (this.renaming?.kind !== kind || this.renaming.id !== id) return shown;
    return html`<input
      class="inline"
      data-testid="rename-input"
      .value=${name}
      @keydown=${(ev: KeyboardEvent) => {
        const input = ev.target as HTMLInputElement;
        if (ev.key === "Enter") this.rename(kind, id, name, input.value);
        if (ev.key === "Escape") {
          this.renaming = null;
          this.changed();
        }
      }}
      @blur=${(ev: FocusEvent) => this.rename(kind, id, name, (ev.target as HTMLInputElement).value)}
    />`;
  }

  private startRename(kind: "plate" | "acquisition", id: string): void {
    this.renaming = { kind, id };
    this.changed();
    // focus the new input once drawn
    requestAnimationFrame(() =>
      (document.querySelector("[data-testid=rename-input]") as HTMLInputElement | null)?.focus(),
    );
  }

  private plateCard(plate: Plate): TemplateResult {
    const files = plate.acquisitions.reduce((n, a) => n + (this.counts.get(a.id) ?? 0), 0);
    return html`<article class="plate-card" data-testid="plate-row" data-name=${plate.name} data-id=${plate.id}>
      <header>
        <h2>${this.nameCell("plate", plate.id, plate.name, html`<span data-testid="plate-name">${plate.name}</span>`)}</h2>
        ${statusBadge(plate.status, plate.acquisitions.length ? files : 0)}
        <span class="muted" data-testid="acquisition-count"
          >${plate.acquisitions.length} acquisition${plate.acquisitions.length === 1 ? "" : "s"}</span
        >
        <span class="spacer"></span>
        <button data-testid="add-acquisition" @click=${() => this.open({ kind: "create-acquisition", plate, error: "" })}>
          + Add acquisition
        </button>
        <button class="icon" title="Rename plate" data-testid="rename-plate" @click=${() => this.startRename("plate", plate.id)}>
          ${pencilIcon}
        </button>
        <button class="icon danger" title="Delete plate" data-testid="delete-plate"
          @click=${() => this.open({ kind: "delete-plate", plate, error: "" })}>
          ${trashIcon}
        </button>
      </header>
      ${plate.acquisitions.length === 0
        ? html`<p class="muted">No acquisitions yet: add one to upload its files.</p>`
        : html`<table class="list acquisitions">
            <thead><tr><th>Acquisition</th><th>Status</th><th>Files uploaded</th><th></th></tr></thead>
            <tbody>${plate.acquisitions.map((a) => this.acquisitionRow(a))}</tbody>
          </table>`}
    </article>`;
  }

  private acquisitionRow(a: Acquisition): TemplateResult {
    const count = this.counts.get(a.id);
    const link = html`<a href=${this.acquisitionHref(a)} data-link data-testid="acquisition-link">${a.name}</a>`;
    return html`<tr data-testid="acquisition-row" data-name=${a.name} data-id=${a.id}>
      <td>${this.nameCell("acquisition", a.id, a.name, link)}</td>
      <td>${statusBadge(a.status, count)}</td>
      <td data-testid="file-count">${count ?? "…"}</td>
      <td class="actions">
        <a class="button" href=${this.acquisitionHref(a)} data-link data-testid="open-acquisition">Upload files</a>
        <button class="icon" title="Rename acquisition" data-testid="rename-acquisition"
          @click=${() => this.startRename("acquisition", a.id)}>
          ${pencilIcon}
        </button>
        <button class="icon danger" title="Delete acquisition" data-testid="delete-acquisition"
          @click=${() => this.open({ kind: "delete-acquisition", acquisition: a, error: "" })}>
          ${trashIcon}
        </button>
      </td>
    </tr>`;
  }

  private dialogTemplate(): TemplateResult | typeof nothing {
    const d = this.dialog;
    if (d === null) return nothing;
    if (d.kind === "delete-plate" || d.kind === "delete-acquisition") {
      const what =
        d.kind === "delete-plate"
          ? html`plate <b>${d.plate.name}</b> with its ${d.plate.acquisitions.length} acquisition(s), their
              uploaded files, wells and sites`
          : html`acquisition <b>${d.acquisition.name}</b> of plate <b>${d.acquisition.plate_name}</b> with its
              uploaded files`;
      return modal(
        d.kind === "delete-plate" ? "Delete plate" : "Delete acquisition",
        html`<form @submit=${(e: SubmitEvent) => this.submitDialog(e)}>
          <p>Delete ${what}? This cannot be undone.</p>
          ${errorLine(d.error)}
          <footer>
            <button type="button" @click=${this.close}>Cancel</button>
            <button class="danger" type="submit" data-testid="confirm-delete">Delete</button>
          </footer>
        </form>`,
        this.close,
        "delete-dialog",
      );
    }
    const plate = d.kind === "create-acquisition" ? d.plate : null;
    return modal(
      plate ? `New acquisition of ${plate.name}` : "New plate",
      html`<form class="form" @submit=${(e: SubmitEvent) => this.submitDialog(e)}>
        <label>Name <input name="name" required autofocus data-testid="name-input" /></label>
        <label>Description <textarea name="description" rows="2"></textarea></label>
        ${errorLine(d.error)}
        <footer>
          <button type="button" @click=${this.close}>Cancel</button>
          <button class="primary" type="submit" data-testid="create-submit">Create</button>
        </footer>
      </form>`,
      this.close,
      plate ? "create-acquisition-dialog" : "create-plate-dialog",
    );
  }
}
