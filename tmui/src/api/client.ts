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
}
