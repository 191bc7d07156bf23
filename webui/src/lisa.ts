// LISA's control-plane resources the UI uses: sessions, the model registry, RAG repositories.

import { ApiClient, ApiError } from "./api";

export interface StoredMessage {
  role: "system" | "user" | "assistant";
  content: string;
  createdAt?: string | null;
  metadata?: Record<string, unknown>;
}

export interface Parameters {
  model?: string | null;
  systemPrompt?: string | null;
  temperature?: number | null;
  topK?: number | null;
  topP?: number | null;
  maxTokens?: number | null;
  ragEnabled?: boolean;
  repositoryId?: string | null;
}

export interface SessionSummary {
  sessionId: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  version: number;
  messageCount: number;
  sizeBytes: number;
  parameters: Parameters;
}

export interface Session extends SessionSummary {
  messages: StoredMessage[];
}

export interface AppendResult extends SessionSummary {
  firstIndex: number;
}

export function newSessionId(): string {
  const random = crypto.getRandomValues(new Uint8Array(6));
  return `${Date.now().toString(36)}-${Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class SessionsApi {
  constructor(private readonly api: ApiClient) {}

  async list(): Promise<SessionSummary[]> {
    return (await this.api.get<{ sessions: SessionSummary[] }>("/sessions")).sessions;
  }

  get(id: string): Promise<Session> {
    return this.api.get<Session>(`/sessions/${encodeURIComponent(id)}`);
  }

  create(id: string, body: { name?: string; messages: StoredMessage[]; parameters: Parameters }): Promise<Session> {
    return this.api.request<Session>("PUT", `/sessions/${encodeURIComponent(id)}`, { body });
  }

  /** Update based on `version`; on a conflict (409) re-read once and reapply, since the change is a replace. */
  async update(
    id: string,
    version: number,
    change: { name?: string; parameters?: Parameters; messages?: StoredMessage[] },
  ): Promise<Session> {
    const put = (v: number) =>
      this.api.request<Session>("PUT", `/sessions/${encodeURIComponent(id)}`, { body: { ...change, version: v } });
    try {
      return await put(version);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 409) throw error;
      return put((await this.get(id)).version);
    }
  }

  append(id: string, messages: StoredMessage[]): Promise<AppendResult> {
    return this.api.request<AppendResult>("POST", `/sessions/${encodeURIComponent(id)}/messages`, {
      body: { messages },
    });
  }

  delete(id: string): Promise<unknown> {
    return this.api.request("DELETE", `/sessions/${encodeURIComponent(id)}`);
  }

  deleteAll(): Promise<{ deleted: number }> {
    return this.api.request("DELETE", "/sessions");
  }
}

export interface ModelChoice {
  id: string;
  label: string;
  available: boolean;
  defaults: { maxTokens?: number; temperature?: number; topP?: number; topK?: number };
  /** Rough prompt budget in characters (from the container's MAX_INPUT_LENGTH tokens). */
  promptChars: number;
}

function listOf(body: unknown, key: string): Array<Record<string, unknown>> {
  if (Array.isArray(body)) return body as Array<Record<string, unknown>>;
  const inner = (body as Record<string, unknown> | null)?.[key];
  return Array.isArray(inner) ? (inner as Array<Record<string, unknown>>) : [];
}

function num(value: unknown): number | undefined {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) ? n : undefined;
}

/**
 * How many characters of conversation to send: ~3 characters per token of the container's MAX_INPUT_LENGTH when the
 * registry shows it (admins see containerConfig.environment), else a budget small models can take (~1000 tokens).
 */
function promptBudget(maxInputTokens: number | undefined): number {
  return maxInputTokens ? maxInputTokens * 3 : 4000;
}

/** Text-generation models from the registry (GET /models); the OpenAI model list if there is no registry route. */
export async function loadModels(api: ApiClient): Promise<ModelChoice[]> {
  let records: Array<Record<string, unknown>>;
  try {
    records = listOf(await api.get<unknown>("/models"), "models");
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 403)) throw error;
    const openai = listOf(await api.get<unknown>("/v1/openai/models"), "data");
    return openai.map((m) => ({
      id: String(m.id),
      label: String(m.id),
      available: true,
      defaults: {},
      promptChars: promptBudget(undefined),
    }));
  }
  return records
    .filter((m) => (m.modelType ?? m.model_type) === "textgen")
    .map((m) => {
      const id = String(m.modelId ?? m.modelName ?? m.id);
      const status = typeof m.status === "string" ? m.status : "InService";
      const kwargs = (m.defaultModelKwargs ?? {}) as Record<string, unknown>;
      const env = ((m.containerConfig as Record<string, unknown> | undefined)?.environment ?? {}) as Record<string, unknown>;
      const available = status === "InService";
      return {
        id,
        label: available ? id : `${id} (${status})`,
        available,
        defaults: {
          maxTokens: num(kwargs.max_new_tokens ?? kwargs.max_tokens),
          temperature: num(kwargs.temperature),
          topP: num(kwargs.top_p),
          topK: num(kwargs.top_k),
        },
        promptChars: promptBudget(num(env.MAX_INPUT_LENGTH)),
      };
    })
    .sort((a, b) => Number(b.available) - Number(a.available) || a.id.localeCompare(b.id));
}

export interface Repository {
  id: string;
  label: string;
}

/** RAG repositories the user may use; none when RAG is not deployed (404, or API Gateway's 403 for no route). */
export async function loadRepositories(api: ApiClient): Promise<Repository[]> {
  try {
    const records = listOf(await api.get<unknown>("/repositories"), "repositories");
    return records
      .map((r) => String(r.repositoryId ?? r.id ?? ""))
      .filter(Boolean)
      .map((id) => ({ id, label: id }));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return [];
    throw error;
  }
}
