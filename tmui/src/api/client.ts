// The one typed client of the REST API. Every call of the app goes through here.

import type {
  Channel,
  Experiment,
  ExperimentChoices,
  Layout,
  MapobjectInfo,
  MapobjectType,
  NewExperiment,
  ObjectValues,
  Selection,
  SelectionDetail,
  SelectionMember,
  Share,
  Tool,
  ToolJob,
  ToolResult,
} from "./types";

/** A failed request: `status` 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

interface OpenApiSpec {
  paths: Record<
    string,
    Record<
      string,
      {
        requestBody?: {
          content: Record<string, { schema?: { properties?: Record<string, { enum?: unknown[] }> } }>;
        };
      }
    >
  >;
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

export class Api {
  /** Called once when the server refuses the token (expired or revoked). */
  onUnauthorized: (message: string) => void = () => {};

  constructor(private token: string | null = null) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  private async request(method: Method, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `JWT ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "The server cannot be reached: it may be restarting. Try again shortly.");
    }
    if (response.ok) return response;
    let message = `${method} ${path} failed with status ${response.status}`;
    try {
      const payload = (await response.json()) as { error?: { message?: string } };
      if (payload.error?.message) message = payload.error.message;
    } catch {
      // a proxy's HTML page: keep the generic message
    }
    if (response.status === 502 || response.status === 503 || response.status === 504) {
      message = "The server is restarting or overloaded. Try again shortly.";
    }
    if (response.status === 401 && this.token && !path.startsWith("/auth")) {
      this.onUnauthorized(message);
    }
    throw new ApiError(response.status, message);
  }

  private async json<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    return (await response.json()) as T;
  }

  private async data<T>(method: Method, path: string, body?: unknown): Promise<T> {
    return (await this.json<{ data: T }>(method, path, body)).data;
  }

  // --- authentication
  async login(username: string, password: string): Promise<string> {
    const answer = await this.json<{ access_token: string }>("POST", "/auth", { username, password });
    return answer.access_token;
  }

  async tileToken(): Promise<{ token: string; expiresIn: number }> {
    const answer = await this.json<{ access_token: string; expires_in: number }>(
      "POST",
      "/auth/tile_token",
    );
    return { token: answer.access_token, expiresIn: answer.expires_in };
  }

  // --- experiments
  experiments(): Promise<Experiment[]> {
    return this.data("GET", "/api/experiments");
  }

  experiment(id: string): Promise<Experiment> {
    return this.data("GET", `/api/experiments/${id}`);
  }

  async experimentChoices(): Promise<ExperimentChoices> {
    const [workflowTypes, microscopeTypes, acquisitionModes, spec] = await Promise.all([
      this.data<string[]>("GET", "/api/workflow_types"),
      this.data<string[]>("GET", "/api/microscope_types"),
      this.data<string[]>("GET", "/api/acquisition_modes"),
      this.json<OpenApiSpec>("GET", "/api/openapi.json"),
    ]);
    // plate formats have no route of their own: the API's description lists them
    const body = spec.paths["/api/experiments"]?.post?.requestBody?.content["application/json"]?.schema;
    const plateFormats = (body?.properties?.plate_format?.enum ?? []) as number[];
    return { workflowTypes, microscopeTypes, acquisitionModes, plateFormats };
  }

  createExperiment(experiment: NewExperiment): Promise<Experiment> {
    return this.data("POST", "/api/experiments", experiment);
  }

  async renameExperiment(id: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${id}`, { name });
  }

  async deleteExperiment(id: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${id}`);
  }

  shares(id: string): Promise<Share[]> {
    return this.data("GET", `/api/experiments/${id}/shares`);
  }

  async share(id: string, user: string, writeAccess: boolean): Promise<void> {
    await this.request("POST", `/api/experiments/${id}/shares`, { user, write_access: writeAccess });
  }

  async unshare(id: string, user: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${id}/shares?user=${encodeURIComponent(user)}`);
  }

  // --- what the viewer shows
  channels(experimentId: string): Promise<Channel[]> {
    return this.data("GET", `/api/experiments/${experimentId}/channels`);
  }

  async renameChannel(experimentId: string, channelId: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/channels/${channelId}`, { name });
  }

  layout(experimentId: string): Promise<Layout> {
    return this.data("GET", `/api/experiments/${experimentId}/layout`);
  }

  mapobjectTypes(experimentId: string): Promise<MapobjectType[]> {
    return this.data("GET", `/api/experiments/${experimentId}/mapobject_types`);
  }

  async renameMapobjectType(experimentId: string, typeId: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/mapobject_types/${typeId}`, { name });
  }

  mapobjectInfo(experimentId: string, mapobjectId: string): Promise<MapobjectInfo> {
    return this.data("GET", `/api/experiments/${experimentId}/mapobjects/${mapobjectId}/info`);
  }

  /** Values of a feature (or a tool result) of every object of a type: one binary request. */
  async values(
    experimentId: string,
    typeId: string,
    source: { featureId: string } | { toolResultId: string },
  ): Promise<ObjectValues> {
    const query =
      "featureId" in source ? `feature_id=${source.featureId}` : `tool_result_id=${source.toolResultId}`;
    const response = await this.request(
      "GET",
      `/api/experiments/${experimentId}/mapobject_types/${typeId}/values?${query}`,
    );
    const count = Number(response.headers.get("X-Count") ?? "0");
    const wide = response.headers.get("X-Id-Dtype") === "float64";
    const buffer = await response.arrayBuffer();
    const idBytes = count * (wide ? 8 : 4);
    const ids = wide ? new Float64Array(buffer, 0, count) : new Uint32Array(buffer, 0, count);
    const values = new Float32Array(buffer.slice(idBytes, idBytes + count * 4));
    return { ids, values };
  }

  // --- selections
  selections(experimentId: string): Promise<Selection[]> {
    return this.data("GET", `/api/experiments/${experimentId}/selections`);
  }

  selection(experimentId: string, selectionId: string): Promise<SelectionDetail> {
    return this.data("GET", `/api/experiments/${experimentId}/selections/${selectionId}`);
  }

  createSelection(
    experimentId: string,
    typeId: string,
    name: string,
    color: string,
  ): Promise<Selection> {
    return this.data("POST", `/api/experiments/${experimentId}/selections`, {
      mapobject_type_id: typeId,
      name,
      color,
    });
  }

  async updateSelection(
    experimentId: string,
    selectionId: string,
    change: { name?: string; color?: string },
  ): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/selections/${selectionId}`, change);
  }

  async deleteSelection(experimentId: string, selectionId: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${experimentId}/selections/${selectionId}`);
  }

  async changeMembers(
    experimentId: string,
    selectionId: string,
    add: SelectionMember[],
    remove: (string | number)[],
  ): Promise<void> {
    await this.request("POST", `/api/experiments/${experimentId}/selections/${selectionId}/members`, {
      add,
      remove,
    });
  }

  /** The CSV export of a selection, as a Blob for a download link. */
  async selectionCsv(experimentId: string, selectionId: string): Promise<Blob> {
    const response = await this.request(
      "GET",
      `/api/experiments/${experimentId}/selections/${selectionId}/members.csv`,
    );
    return response.blob();
  }

  // --- tools
  tools(): Promise<Tool[]> {
    return this.data("GET", "/api/tools");
  }

  async requestTool(experimentId: string, toolName: string, payload: unknown): Promise<string> {
    const answer = await this.data<{ submission_id: string }>(
      "POST",
      `/api/experiments/${experimentId}/tools/request`,
      { tool_name: toolName, payload },
    );
    return answer.submission_id;
  }

  toolJobs(experimentId: string, query: { submissionId?: string; state?: string }): Promise<ToolJob[]> {
    const params = new URLSearchParams();
    if (query.submissionId) params.set("submission_id", query.submissionId);
    if (query.state) params.set("state", query.state);
    return this.data("GET", `/api/experiments/${experimentId}/tools/jobs?${params}`);
  }

  async toolJobLog(experimentId: string, jobId: string): Promise<string> {
    const log = await this.data<{ stdout?: string; stderr?: string }>(
      "GET",
      `/api/experiments/${experimentId}/tools/jobs/${jobId}/log`,
    );
    return [log.stderr, log.stdout].filter(Boolean).join("\n");
  }

  toolResults(experimentId: string, submissionId?: string): Promise<ToolResult[]> {
    const query = submissionId ? `?submission_id=${submissionId}` : "";
    return this.data("GET", `/api/experiments/${experimentId}/tools/results${query}`);
  }

  async renameToolResult(experimentId: string, resultId: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/tools/results/${resultId}`, { name });
  }

  async deleteToolResult(experimentId: string, resultId: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${experimentId}/tools/results/${resultId}`);
  }

  // --- upload: plates, acquisitions, files (section of the upload screen)
  // (types named inline with import(): the import list at the top is shared by every section)
  plates(experimentId: string): Promise<import("./types").Plate[]> {
    return this.data("GET", `/api/experiments/${experimentId}/plates`);
  }

  createPlate(
    experimentId: string,
    name: string,
    description = "",
  ): Promise<import("./types").Plate> {
    return this.data("POST", `/api/experiments/${experimentId}/plates`, { name, description });
  }

  async renamePlate(experimentId: string, plateId: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/plates/${plateId}`, { name });
  }

  async deletePlate(experimentId: string, plateId: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${experimentId}/plates/${plateId}`);
  }

  acquisition(experimentId: string, acquisitionId: string): Promise<import("./types").Acquisition> {
    return this.data("GET", `/api/experiments/${experimentId}/acquisitions/${acquisitionId}`);
  }

  createAcquisition(
    experimentId: string,
    plateName: string,
    name: string,
    description = "",
  ): Promise<import("./types").Acquisition> {
    return this.data("POST", `/api/experiments/${experimentId}/acquisitions`, {
      plate_name: plateName,
      name,
      description,
    });
  }

  async renameAcquisition(experimentId: string, acquisitionId: string, name: string): Promise<void> {
    await this.request("PUT", `/api/experiments/${experimentId}/acquisitions/${acquisitionId}`, { name });
  }

  async deleteAcquisition(experimentId: string, acquisitionId: string): Promise<void> {
    await this.request("DELETE", `/api/experiments/${experimentId}/acquisitions/${acquisitionId}`);
  }

  /** Why the server would refuse each name (null: accepted), in order. */
  async checkUploadNames(
    experimentId: string,
    acquisitionId: string,
    names: string[],
  ): Promise<(string | null)[]> {
    const answer = await this.json<{ reasons: (string | null)[] }>(
      "POST",
      `/api/experiments/${experimentId}/acquisitions/${acquisitionId}/upload/validity-check`,
      { files: names.map((name) => ({ name })), explain: true },
    );
    return answer.reasons;
  }

  /** Register names about to be uploaded; the answer: those not yet uploaded completely. */
  registerUploads(experimentId: string, acquisitionId: string, names: string[]): Promise<string[]> {
    return this.data(
      "POST",
      `/api/experiments/${experimentId}/acquisitions/${acquisitionId}/upload/register`,
      { files: names },
    );
  }

  uploadCount(experimentId: string, acquisitionId: string): Promise<number> {
    return this.data("GET", `/api/experiments/${experimentId}/acquisitions/${acquisitionId}/upload/count`);
  }

  microscopeFiles(
    experimentId: string,
    acquisitionId: string,
    kind: "images" | "metadata",
  ): Promise<import("./types").MicroscopeFile[]> {
    return this.data("GET", `/api/experiments/${experimentId}/acquisitions/${acquisitionId}/${kind}`);
  }

  /**
   * Send one registered file (multipart field `file`) with upload progress: XMLHttpRequest,
   * as fetch reports none. The browser reads the file while it sends it. Rejects with an
   * ApiError (status 0: the connection was lost) or, when `signal` aborts, a DOMException
   * named "AbortError".
   */
  uploadMicroscopeFile(
    experimentId: string,
    acquisitionId: string,
    file: Blob,
    name: string,
    onProgress: import("./types").UploadProgress,
    signal?: AbortSignal,
  ): Promise<string> {
    const path = `/api/experiments/${experimentId}/acquisitions/${acquisitionId}/microscope-file`;
    return new Promise<string>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new DOMException("The upload was cancelled", "AbortError"));
        return;
      }
      const xhr = new XMLHttpRequest();
      const onAbort = () => xhr.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => signal?.removeEventListener("abort", onAbort);
      xhr.open("POST", path);
      if (this.token) xhr.setRequestHeader("Authorization", `JWT ${this.token}`);
      xhr.responseType = "text";
      xhr.upload.onprogress = (event) =>
        onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
      xhr.onabort = () => {
        done();
        reject(new DOMException("The upload was cancelled", "AbortError"));
      };
      xhr.onerror = () => {
        done();
        reject(
          new ApiError(
            0,
            "Connection lost while sending the file: the server cannot be reached. Retry when it is back.",
          ),
        );
      };
      xhr.ontimeout = xhr.onerror;
      xhr.onload = () => {
        done();
        let payload: { message?: string; error?: { message?: string } } = {};
        try {
          payload = JSON.parse(xhr.responseText) as typeof payload;
        } catch {
          // not JSON (a proxy's page): keep the generic message
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(payload.message ?? "ok");
          return;
        }
        let message = payload.error?.message ?? `The server refused the file (status ${xhr.status}).`;
        if (xhr.status === 413 && !payload.error?.message) {
          message = "The file is larger than the server accepts.";
        }
        if (xhr.status === 502 || xhr.status === 503 || xhr.status === 504) {
          message = "The server is restarting or overloaded. Try again shortly.";
        }
        if (xhr.status === 401 && this.token) this.onUnauthorized(message);
        reject(new ApiError(xhr.status, message));
      };
      const form = new FormData();
      form.append("file", file, name);
      xhr.send(form);
    });
  }


  // --- workflow: description, status, submit, jobs (section of the workflow manager)
  // (types named with import("./types"): the shared import list at the top stays untouched)
  workflowDescription(experimentId: string): Promise<import("./types").WorkflowDescription> {
    return this.data("GET", `/api/experiments/${experimentId}/workflow/description`);
  }

  /** Store a description (the server validates it and refuses a bad one with its reason). */
  async saveWorkflowDescription(
    experimentId: string,
    description: import("./types").WorkflowDescription,
  ): Promise<void> {
    await this.request("POST", `/api/experiments/${experimentId}/workflow/description`, { description });
  }

  /** The status tree of the last submission (null before the first); `depth` levels below it. */
  workflowStatus(experimentId: string, depth = 2): Promise<import("./types").WorkflowStatus | null> {
    return this.data("GET", `/api/experiments/${experimentId}/workflow/status?depth=${depth}`);
  }

  /** Submit the workflow, storing `description` first when given; rejects with 409 while one runs. */
  async submitWorkflow(
    experimentId: string,
    description?: import("./types").WorkflowDescription,
  ): Promise<string> {
    const answer = await this.json<{ submission_id: string }>(
      "POST",
      `/api/experiments/${experimentId}/workflow/submit`,
      description ? { description } : {},
    );
    return answer.submission_id;
  }

  /** Submit again from a stage on (its name, or index among the active stages). */
  async resubmitWorkflow(
    experimentId: string,
    from: { stageName?: string; index?: number },
    description?: import("./types").WorkflowDescription,
  ): Promise<string> {
    const answer = await this.json<{ submission_id: string }>(
      "POST",
      `/api/experiments/${experimentId}/workflow/resubmit`,
      {
        ...(from.stageName !== undefined ? { stage_name: from.stageName } : {}),
        ...(from.index !== undefined ? { index: from.index } : {}),
        ...(description ? { description } : {}),
      },
    );
    return answer.submission_id;
  }

  async killWorkflow(experimentId: string): Promise<void> {
    await this.request("POST", `/api/experiments/${experimentId}/workflow/kill`, {});
  }

  /** A page of the jobs of a step in the last submission, in order, with the count of all that
   * pass `state` (filtered by the server: a page of failed jobs is one request). */
  workflowJobs(
    experimentId: string,
    stepName: string,
    index: number,
    batchSize: number,
    state?: import("./types").WorkflowJobFilter,
  ): Promise<import("./types").WorkflowJobsPage> {
    const params = new URLSearchParams({ step_name: stepName, index: String(index), batch_size: String(batchSize) });
    if (state) params.set("state", state);
    return this.json("GET", `/api/experiments/${experimentId}/workflow/jobs?${params.toString()}`);
  }

  workflowJobLog(experimentId: string, jobId: string): Promise<import("./types").WorkflowJobLog> {
    return this.data("GET", `/api/experiments/${experimentId}/workflow/jobs/${jobId}/log`);
  }


  // --- jterator editor: project, modules, checks, debug jobs (section of the pipeline editor)
  // (types named with import("./types"): the shared import list at the top stays untouched)
  jtProject(experimentId: string): Promise<import("./types").JtProject> {
    return this.data("GET", `/jtui/experiments/${experimentId}/project`);
  }

  /** Store the project (the server checks it first and refuses a bad one). */
  async saveJtProject(experimentId: string, project: import("./types").JtProject): Promise<void> {
    await this.request("POST", `/jtui/experiments/${experimentId}/project`, { project });
  }

  /** The server's check of a project, without storing it: rejects with its message. */
  async checkJtProject(experimentId: string, project: import("./types").JtProject): Promise<void> {
    await this.request("POST", `/jtui/experiments/${experimentId}/project/check`, { project });
  }

  jtModules(): Promise<import("./types").JtModule[]> {
    return this.data("GET", "/jtui/available_modules");
  }

  jtChannels(experimentId: string): Promise<string[]> {
    return this.data("GET", `/jtui/experiments/${experimentId}/available_channels`);
  }

  async jtModuleSource(moduleName: string): Promise<string> {
    const query = encodeURIComponent(moduleName);
    return (await this.request("GET", `/jtui/module_source_code?module_name=${query}`)).text();
  }

  jtFigure(experimentId: string, moduleName: string, jobId: number): Promise<import("./types").PlotlyFigure> {
    const query = `module_name=${encodeURIComponent(moduleName)}&job_id=${jobId}`;
    return this.data("GET", `/jtui/experiments/${experimentId}/figure?${query}`);
  }

  jtJobList(experimentId: string, index = 0, batchSize?: number): Promise<import("./types").JtJob[]> {
    return this.data("POST", `/jtui/experiments/${experimentId}/joblist`, {
      index,
      ...(batchSize === undefined ? {} : { batch_size: batchSize }),
    });
  }

  /** Run the pipeline with figures on the sites of `jobIds` (the project is stored first). */
  async runJtJobs(experimentId: string, jobIds: number[], project: import("./types").JtProject): Promise<string> {
    const answer = await this.data<{ submission_id: string }>(
      "POST",
      `/jtui/experiments/${experimentId}/jobs/run`,
      { job_ids: jobIds, project },
    );
    return answer.submission_id;
  }

  jtJobStatus(experimentId: string): Promise<import("./types").JtStatus | null> {
    return this.data("POST", `/jtui/experiments/${experimentId}/jobs/status`, {});
  }

  jtJobOutput(experimentId: string, jobIds?: number[]): Promise<import("./types").JtJobOutput[]> {
    return this.data("POST", `/jtui/experiments/${experimentId}/jobs/output`, {
      ...(jobIds ? { job_ids: jobIds } : {}),
    });
  }

  async killJtJobs(experimentId: string): Promise<void> {
    await this.request("POST", `/jtui/experiments/${experimentId}/jobs/kill`, {});
  }

  /** Object types the pipeline can load as input objects (not Plates, Wells, Sites). */
  jtObjectTypes(experimentId: string): Promise<string[]> {
    return this.data("GET", `/jtui/experiments/${experimentId}/available_objects`);
  }

  /** The handle types, with the types of keys each piped input takes (the server's check). */
  jtHandleTypes(): Promise<import("./types").JtHandleType[]> {
    return this.data("GET", "/jtui/handle_types");
  }

  /** The pattern a pipeline entry's `handles` path must match, as the API's description of the
   * project route says (it holds the module-name rule); null when it says none. */
  async jtHandlesPathPattern(): Promise<string | null> {
    const spec = await this.json<Record<string, unknown>>("GET", "/api/openapi.json");
    const at = (value: unknown, ...keys: string[]): unknown =>
      keys.reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined), value);
    const project = at(spec, "paths", "/jtui/experiments/{experiment_id}/project", "post", "requestBody",
      "content", "application/json", "schema", "properties", "project");
    const pattern = at(project, "properties", "pipeline", "properties", "pipeline", "items", "properties",
      "handles", "pattern");
    return typeof pattern === "string" ? pattern : null;
  }
}
