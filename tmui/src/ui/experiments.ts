// The experiment list: filter, create, rename, delete, share, open in the viewer.

import { html, nothing, type TemplateResult } from "lit-html";
import { live } from "lit-html/directives/live.js";
import { ApiError, type Api } from "../api/client";
import type { Experiment, ExperimentChoices, Share } from "../api/types";
import { errorLine, modal } from "./dialog";

type Dialog =
  | { kind: "create"; choices: ExperimentChoices | null; error: string }
  | { kind: "delete"; experiment: Experiment; error: string }
  | { kind: "share"; experiment: Experiment; shares: Share[] | null; error: string }
  | null;

export class ExperimentsScreen {
  private experiments: Experiment[] | null = null;
  private filter = "";
  private error = "";
  private renaming: string | null = null;
  private dialog: Dialog = null;

  constructor(
    private readonly api: Api,
    private readonly user: string,
    private readonly changed: () => void,
  ) {
    void this.load();
  }

  private async guard(action: () => Promise<void>, onError: (message: string) => void): Promise<void> {
    try {
      await action();
    } catch (err) {
      onError(err instanceof ApiError ? err.message : String(err));
    }
    this.changed();
  }

  private load(): Promise<void> {
    return this.guard(
      async () => {
        this.experiments = await this.api.experiments();
        this.error = "";
      },
      (message) => (this.error = message),
    );
  }

  private openCreate(): void {
    const dialog: Dialog = { kind: "create", choices: null, error: "" };
    this.dialog = dialog;
    this.changed();
    void this.guard(
      async () => {
        dialog.choices = await this.api.experimentChoices();
      },
      (message) => (dialog.error = message),
    );
  }

  private create(event: SubmitEvent): void {
    event.preventDefault();
    const dialog = this.dialog;
    if (dialog?.kind !== "create") return;
    const data = new FormData(event.target as HTMLFormElement);
    const text = (key: string) => String(data.get(key) ?? "");
    void this.guard(
      async () => {
        await this.api.createExperiment({
          name: text("name"),
          description: text("description"),
          workflow_type: text("workflow_type") || undefined,
          plate_format: Number(text("plate_format")),
          plate_acquisition_mode: text("plate_acquisition_mode"),
          microscope_type: text("microscope_type"),
        });
        this.dialog = null;
        await this.load();
      },
      (message) => (dialog.error = message),
    );
  }

  private rename(experiment: Experiment, name: string): void {
    this.renaming = null;
    if (!name.trim() || name === experiment.name) {
      this.changed();
      return;
    }
    void this.guard(
      async () => {
        await this.api.renameExperiment(experiment.id, name.trim());
        await this.load();
      },
      (message) => (this.error = message),
    );
  }

  private remove(): void {
    const dialog = this.dialog;
    if (dialog?.kind !== "delete") return;
    void this.guard(
      async () => {
        await this.api.deleteExperiment(dialog.experiment.id);
        this.dialog = null;
        await this.load();
      },
      (message) => (dialog.error = message),
    );
  }

  private openShare(experiment: Experiment): void {
    const dialog: Dialog = { kind: "share", experiment, shares: null, error: "" };
    this.dialog = dialog;
    this.changed();
    void this.guard(
      async () => {
        dialog.shares = await this.api.shares(experiment.id);
      },
      (message) => (dialog.error = message),
    );
  }

  private share(event: SubmitEvent): void {
    event.preventDefault();
    const dialog = this.dialog;
    if (dialog?.kind !== "share") return;
    const data = new FormData(event.target as HTMLFormElement);
    const user = String(data.get("user") ?? "").trim();
    const write = data.get("access") === "write";
    void this.guard(
      async () => {
        await this.api.share(dialog.experiment.id, user, write);
        dialog.shares = await this.api.shares(dialog.experiment.id);
        dialog.error = "";
      },
      (message) => (dialog.error = message),
    );
  }

  private unshare(user: string): void {
    const dialog = this.dialog;
    if (dialog?.kind !== "share") return;
    void this.guard(
      async () => {
        await this.api.unshare(dialog.experiment.id, user);
        dialog.shares = await this.api.shares(dialog.experiment.id);
      },
      (message) => (dialog.error = message),
    );
  }

  template(): TemplateResult {
    const needle = this.filter.toLowerCase();
    const shown = (this.experiments ?? []).filter((e) => e.name.toLowerCase().includes(needle));
    return html`<main class="page experiments">
      <div class="toolbar">
        <h1>Experiments</h1>
        <input
          type="search"
          placeholder="Filter by name"
          data-testid="experiment-filter"
          .value=${live(this.filter)}
          @input=${(e: InputEvent) => {
            this.filter = (e.target as HTMLInputElement).value;
            this.changed();
          }}
        />
        <button class="primary" data-testid="create-experiment" @click=${() => this.openCreate()}>
          + New experiment
        </button>
      </div>
      ${errorLine(this.error)}
      ${this.experiments === null
        ? html`<p class="muted">Loading…</p>`
        : shown.length === 0
          ? this.experiments.length
            ? html`<p class="muted">No experiment matches the filter.</p>`
            : html`<p class="muted" data-testid="no-experiments">
                No experiments yet. Make one with <b>+ New experiment</b>, then upload its images.
              </p>`
          : html`<table class="list" data-testid="experiment-list">
              <thead>
                <tr><th>Name</th><th>Description</th><th>Owner</th><th></th></tr>
              </thead>
              <tbody>
                ${shown.map((e) => this.row(e))}
              </tbody>
            </table>`}
      ${this.dialogTemplate()}
    </main>`;
  }

  private row(e: Experiment): TemplateResult {
    const own = e.user === this.user;
    const name =
      this.renaming === e.id
        ? html`<input
            class="inline"
            data-testid="rename-input"
            .value=${e.name}
            @keydown=${(ev: KeyboardEvent) => {
              const input = ev.target as HTMLInputElement;
              if (ev.key === "Enter") this.rename(e, input.value);
              if (ev.key === "Escape") {
                this.renaming = null;
                this.changed();
              }
            }}
            @blur=${(ev: FocusEvent) => this.rename(e, (ev.target as HTMLInputElement).value)}
          />`
        : html`<a href="/viewer/${e.id}" data-link>${e.name}</a>`;
    return html`<tr data-testid="experiment-row" data-id=${e.id}>
      <td>${name}</td>
      <td class="muted">${e.description}</td>
      <td>${e.user}</td>
      <td class="actions">
        <a class="button" href="/experiments/${e.id}/upload" data-link data-testid="open-upload">Upload</a>
        <a class="button" href="/experiments/${e.id}/workflow" data-link data-testid="open-workflow"
          >Workflow</a
        >
        <a class="button" href="/viewer/${e.id}" data-link data-testid="open-viewer">View</a>
        <button
          @click=${() => {
            this.renaming = e.id;
            this.changed();
          }}
        >
          Rename
        </button>
        ${own
          ? html`<button data-testid="share" @click=${() => this.openShare(e)}>Share</button>
              <button
                class="danger"
                data-testid="delete"
                @click=${() => {
                  this.dialog = { kind: "delete", experiment: e, error: "" };
                  this.changed();
                }}
              >
                Delete
              </button>`
          : nothing}
      </td>
    </tr>`;
  }

  private close = () => {
    this.dialog = null;
    this.changed();
  };

  private dialogTemplate(): TemplateResult | typeof nothing {
    const d = this.dialog;
    if (d === null) return nothing;
    if (d.kind === "delete") {
      return modal(
        "Delete experiment",
        html`<p>
            Delete <b>${d.experiment.name}</b> with all its images, objects and results? This cannot
            be undone.
          </p>
          ${errorLine(d.error)}
          <footer>
            <button @click=${this.close}>Cancel</button>
            <button class="danger" data-testid="confirm-delete" @click=${() => this.remove()}>
              Delete
            </button>
          </footer>`,
        this.close,
      );
    }
    if (d.kind === "share") {
      return modal(
        `Share ${d.experiment.name}`,
        html`${d.shares === null
            ? html`<p class="muted">Loading…</p>`
            : d.shares.length === 0
              ? html`<p class="muted">Not shared with anyone.</p>`
              : html`<ul class="shares">
                  ${d.shares.map(
                    (s) =>
                      html`<li>
                        ${s.user} (${s.write_access ? "read and write" : "read only"})
                        <button class="link" @click=${() => this.unshare(s.user)}>withdraw</button>
                      </li>`,
                  )}
                </ul>`}
          <form class="row" @submit=${(e: SubmitEvent) => this.share(e)}>
            <input name="user" placeholder="User name" required />
            <select name="access">
              <option value="read">read only</option>
              <option value="write">read and write</option>
            </select>
            <button class="primary" type="submit">Share</button>
          </form>
          ${errorLine(d.error)}`,
        this.close,
        "share-dialog",
      );
    }
    const c = d.choices;
    return modal(
      "New experiment",
      c === null
        ? html`<p class="muted">Loading choices…</p>
            ${errorLine(d.error)}`
        : html`<form class="form" @submit=${(e: SubmitEvent) => this.create(e)}>
            <label>Name <input name="name" required /></label>
            <label>Description <textarea name="description" rows="2"></textarea></label>
            <label
              >Workflow type
              <select name="workflow_type">
                ${c.workflowTypes.map((t) => html`<option>${t}</option>`)}
              </select></label
            >
            <label
              >Plate format
              <select name="plate_format">
                ${c.plateFormats.map((n) => html`<option value=${n} ?selected=${n === 384}>${n} wells</option>`)}
              </select></label
            >
            <label
              >Plate acquisition mode
              <select name="plate_acquisition_mode">
                ${c.acquisitionModes.map((t) => html`<option>${t}</option>`)}
              </select></label
            >
            <label
              >Microscope type
              <select name="microscope_type">
                ${c.microscopeTypes.map(
                  (t) => html`<option ?selected=${t === "cellvoyager"}>${t}</option>`,
                )}
              </select></label
            >
            ${errorLine(d.error)}
            <footer>
              <button type="button" @click=${this.close}>Cancel</button>
              <button class="primary" type="submit">Create</button>
            </footer>
          </form>`,
      this.close,
      "create-dialog",
    );
  }
}
