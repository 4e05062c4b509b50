// The upload of many files into one acquisition, as a plain class without DOM: names are
// checked, registered, then sent a few at a time with progress, retried or cancelled.
//
// The protocol is the server's resumable one: `register` answers the names that are not yet
// complete on the server, so adding the same files again after a reload sends only the
// missing ones; the others are "skipped".

/** Where a file stands. */
export type FileState =
  | "checking" // its name is being checked
  | "refused" // the name cannot be uploaded (see `message`)
  | "ready" // accepted, not yet registered
  | "waiting" // registered, waits for a free slot
  | "uploading"
  | "complete"
  | "failed" // see `message`; Retry sends it again
  | "cancelled" // Cancel stopped it; Retry sends it again
  | "skipped"; // already complete on the server

export const FILE_STATES: FileState[] = [
  "checking",
  "refused",
  "ready",
  "waiting",
  "uploading",
  "complete",
  "failed",
  "cancelled",
  "skipped",
];

/** A file picked or dropped: its bytes are read only while it is sent. */
export interface SourceFile {
  name: string;
  /** where it came from (folder path), for messages */
  path: string;
  file: Blob;
}

export interface QueueItem {
  name: string;
  path: string;
  file: Blob;
  size: number;
  state: FileState;
  /** bytes of this file sent so far */
  loaded: number;
  /** why refused or failed, or the server's note */
  message: string;
}

/** The server's side of an upload (the Api, bound to an acquisition). */
export interface UploadServer {
  /** why each name is refused (null: accepted) */
  check(names: string[]): Promise<(string | null)[]>;
  register(names: string[]): Promise<string[]>;
  send(name: string, file: Blob, onProgress: (loaded: number) => void, signal: AbortSignal): Promise<string>;
}

/** How a failed request reads to the user (status 0: no connection). */
export type Describe = (error: unknown) => string;

/** Names sent per validity check or registration request. */
const BATCH = 5000;
/** The rate is measured over this many milliseconds. */
const RATE_WINDOW_MS = 4000;

export class UploadQueue {
  readonly items: QueueItem[] = [];
  /** names added again while already listed (the first one is kept) */
  duplicates = 0;
  /** an error of the whole queue (a failed check or registration), or "" */
  error = "";
  /** checking or registering names */
  busy = false;
  /** called after every change (progress too: throttle the drawing) */
  onChange: () => void = () => {};

  private readonly byName = new Map<string, QueueItem>();
  private readonly inFlight = new Map<QueueItem, AbortController>();
  private pending: QueueItem[] = [];
  private samples: [number, number][] = [];
  /** bytes sent in this page's life (what the rate is measured on) */
  private sentBytes = 0;

  constructor(
    private readonly server: UploadServer,
    private readonly describe: Describe,
    readonly concurrency = 4,
  ) {}

  /** Add files: de-duplicate by name, refuse bad names, check the rest with the server. */
  async add(files: SourceFile[]): Promise<void> {
    const fresh: QueueItem[] = [];
    for (const source of files) {
      if (this.byName.has(source.name)) {
        this.duplicates += 1;
        continue;
      }
      const item: QueueItem = {
        name: source.name,
        path: source.path,
        file: source.file,
        size: source.file.size,
        state: "checking",
        loaded: 0,
        message: "",
      };
      this.byName.set(item.name, item);
      this.items.push(item);
      fresh.push(item);
    }
    this.changed();
    if (fresh.length === 0) return;
    await this.guard(async () => {
      for (let start = 0; start < fresh.length; start += BATCH) {
        const batch = fresh.slice(start, start + BATCH);
        // the server says why (hidden files, paths, not of the microscope type)
        const reasons = await this.server.check(batch.map((item) => item.name));
        batch.forEach((item, i) => {
          item.state = reasons[i] === null ? "ready" : "refused";
          item.message = reasons[i] ?? "";
        });
        this.changed();
      }
    }, fresh);
  }

  /** Register the accepted files and send those the server does not have yet. */
  async upload(): Promise<void> {
    const ready = this.items.filter((item) => item.state === "ready");
    if (ready.length === 0) {
      this.pump();
      return;
    }
    await this.guard(async () => {
      for (let start = 0; start < ready.length; start += BATCH) {
        const batch = ready.slice(start, start + BATCH);
        const missing = new Set(await this.server.register(batch.map((item) => item.name)));
        for (const item of batch) {
          if (missing.has(item.name)) {
            item.state = "waiting";
            this.pending.push(item);
          } else {
            item.state = "skipped";
            item.message = "already on the server";
          }
        }
        this.pump();
      }
    }, []);
  }

  /** Send failed and cancelled files again. */
  retry(): void {
    for (const item of this.items) {
      if (item.state === "failed" || item.state === "cancelled") {
        item.state = "waiting";
        item.message = "";
        item.loaded = 0;
        this.pending.push(item);
      }
    }
    this.error = "";
    this.pump();
  }

  /** Stop: files in flight are aborted (the server keeps no part of them), waiting ones kept. */
  cancel(): void {
    for (const item of this.pending) {
      if (item.state === "waiting") {
        item.state = "cancelled";
        item.message = "cancelled";
      }
    }
    this.pending = [];
    for (const controller of [...this.inFlight.values()]) controller.abort();
    this.changed();
  }

  /** Forget the files not in flight (complete, refused, skipped ... and the accepted ones). */
  clear(): void {
    if (this.active) return;
    this.items.length = 0;
    this.byName.clear();
    this.pending = [];
    this.duplicates = 0;
    this.error = "";
    this.samples = [];
    this.changed();
  }

  /** Files waiting or in flight. */
  get active(): boolean {
    return this.inFlight.size > 0 || this.pending.length > 0;
  }

  count(state: FileState): number {
    let n = 0;
    for (const item of this.items) if (item.state === state) n += 1;
    return n;
  }

  counts(): Record<FileState, number> {
    const result = Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as Record<FileState, number>;
    for (const item of this.items) result[item.state] += 1;
    return result;
  }

  /** Bytes sent and bytes to send of the files this page uploads (not skipped or refused). */
  progress(): { loaded: number; total: number } {
    let loaded = 0;
    let total = 0;
    for (const item of this.items) {
      if (item.state === "waiting" || item.state === "uploading" || item.state === "complete" ||
          item.state === "failed" || item.state === "cancelled") {
        total += item.size;
        loaded += item.state === "complete" ? item.size : item.loaded;
      }
    }
    return { loaded, total };
  }

  /** Bytes per second over the last few seconds (0 when nothing moves). */
  rate(now = performance.now()): number {
    const recent = this.samples.filter(([t]) => now - t <= RATE_WINDOW_MS);
    if (recent.length === 0 || !this.active) return 0;
    const [t0, b0] = recent[0];
    const elapsed = Math.max(now - t0, 250) / 1000;
    return (this.sentBytes - b0) / elapsed;
  }

  private changed(): void {
    this.onChange();
  }

  private note(bytes: number): void {
    this.sentBytes += bytes;
    const now = performance.now();
    this.samples.push([now, this.sentBytes]);
    while (this.samples.length > 1 && now - this.samples[0][0] > RATE_WINDOW_MS) this.samples.shift();
  }

  private async guard(action: () => Promise<void>, items: QueueItem[]): Promise<void> {
    this.busy = true;
    this.error = "";
    this.changed();
    try {
      await action();
    } catch (err) {
      this.error = this.describe(err);
      // names not checked stay unusable until they are added again
      for (const item of items) {
        if (item.state === "checking") {
          item.state = "refused";
          item.message = "could not be checked: " + this.error;
          this.byName.delete(item.name);
        }
      }
    }
    this.busy = false;
    this.changed();
  }

  /** Start files while there are free slots. */
  private pump(): void {
    while (this.inFlight.size < this.concurrency && this.pending.length > 0) {
      const item = this.pending.shift() as QueueItem;
      if (item.state === "waiting") void this.send(item);
    }
    this.changed();
  }

  private async send(item: QueueItem): Promise<void> {
    const controller = new AbortController();
    this.inFlight.set(item, controller);
    item.state = "uploading";
    item.loaded = 0;
    if (this.samples.length === 0) this.note(0);
    this.changed();
    try {
      const answer = await this.server.send(
        item.name,
        item.file,
        (loaded) => {
          // the request body is a little larger than the file (multipart headers)
          const now = Math.min(loaded, item.size);
          this.note(now - item.loaded);
          item.loaded = now;
          this.changed();
        },
        controller.signal,
      );
      this.note(item.size - item.loaded);
      item.loaded = item.size;
      item.state = "complete";
      item.message = answer === "ok" ? "" : answer;
    } catch (err) {
      this.note(-item.loaded);
      item.loaded = 0;
      if (controller.signal.aborted) {
        item.state = "cancelled";
        item.message = "cancelled";
      } else {
        item.state = "failed";
        item.message = this.describe(err);
      }
    }
    this.inFlight.delete(item);
    this.pump();
  }
}
