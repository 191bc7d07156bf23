// Streaming chat completions (OpenAI wire format, server-sent events) with cancellation.

import { ApiClient, ApiError, errorMessage, failure } from "./api";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  lisa_rag?: { repositoryId: string; k: number };
}

export interface Source {
  title: string;
  detail?: string;
}

export interface StreamResult {
  content: string;
  finishReason: string | null;
  stopped: boolean;
  usage?: Record<string, number>;
  sources: Source[];
}

/** A failure after the answer started: the words so far are kept in `partial`. */
export class StreamError extends ApiError {
  constructor(
    status: number,
    message: string,
    readonly partial: StreamResult,
  ) {
    super(status, message);
    this.name = "StreamError";
  }
}

/** Split an SSE byte stream into the `data` payloads of its events. */
export class SseParser {
  private buffer = "";

  push(text: string): string[] {
    this.buffer += text.replace(/\r\n?/g, "\n");
    const events: string[] = [];
    let boundary = this.buffer.indexOf("\n\n");
    while (boundary >= 0) {
      const block = this.buffer.slice(0, boundary);
      this.buffer = this.buffer.slice(boundary + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""));
      if (data.length) events.push(data.join("\n"));
      boundary = this.buffer.indexOf("\n\n");
    }
    return events;
  }
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

/** A source as the answer cites it: "[n] filename, page p" (n is the router's index, the [n] in the answer). */
export function sourceLabel(record: Record<string, unknown>, position: number): string {
  const index = typeof record.index === "number" && Number.isFinite(record.index) ? record.index : position;
  const uri = text(record.source);
  const basename = uri ? uri.replace(/\/+$/, "").split("/").pop() : undefined;
  const name =
    text(record.filename) ??
    text(record.documentName) ??
    text(record.title) ??
    text(record.name) ??
    (basename || undefined) ??
    text(record.documentId) ??
    "source";
  const page = typeof record.page === "number" || text(record.page) ? String(record.page) : undefined;
  return `[${index}] ${page ? `${name}, page ${page}` : name}`;
}

function sourcesOf(chunk: Record<string, unknown>): Source[] {
  const raw = chunk.lisa_rag_sources ?? chunk.sources ?? (chunk.lisa_rag as Record<string, unknown> | undefined)?.sources;
  if (!Array.isArray(raw)) return [];
  return raw.map((item, i): Source => {
    if (typeof item === "string") return { title: `[${i + 1}] ${item}` };
    const record = (item ?? {}) as Record<string, unknown>;
    const score = typeof record.score === "number" ? `score ${record.score.toFixed(2)}` : undefined;
    return { title: sourceLabel(record, i + 1), detail: score };
  });
}

/** POST a streaming chat completion; `onDelta` gets each piece of text as it arrives. */
export async function streamChat(
  api: ApiClient,
  request: ChatRequest,
  options: { signal: AbortSignal; onDelta: (text: string, soFar: string) => void },
): Promise<StreamResult> {
  const result: StreamResult = { content: "", finishReason: null, stopped: false, sources: [] };
  let response: Response;
  try {
    response = await api.fetch("POST", "/v1/openai/chat/completions", {
      body: { ...request, stream: true, stream_options: { include_usage: true } },
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") return { ...result, stopped: true };
    throw error;
  }
  if (!response.ok) throw api.refused(await failure(response));
  if (!response.body) throw new ApiError(502, "The server sent no answer body");

  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  let done = false;
  try {
    while (!done) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      for (const data of parser.push(decoder.decode(value, { stream: true }))) {
        if (data.trim() === "[DONE]") {
          done = true;
          break;
        }
        let chunk: Record<string, unknown>;
        try {
          chunk = JSON.parse(data) as Record<string, unknown>;
        } catch {
          continue; // a comment or keep-alive the server may send
        }
        if (chunk.error) {
          throw new StreamError(502, errorMessage(chunk, "The model failed while answering"), { ...result });
        }
        const choice = (chunk.choices as Array<Record<string, unknown>> | undefined)?.[0];
        const delta = (choice?.delta as Record<string, unknown> | undefined)?.content;
        if (typeof delta === "string" && delta) {
          result.content += delta;
          options.onDelta(delta, result.content);
        }
        if (typeof choice?.finish_reason === "string") result.finishReason = choice.finish_reason;
        if (chunk.usage && typeof chunk.usage === "object") result.usage = chunk.usage as Record<string, number>;
        const sources = sourcesOf(chunk);
        if (sources.length) result.sources = sources;
      }
    }
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") return { ...result, stopped: true };
    if (error instanceof StreamError) throw error;
    if (options.signal.aborted) return { ...result, stopped: true };
    throw new StreamError(0, "The connection broke while the answer was streaming", { ...result });
  } finally {
    reader.cancel().catch(() => undefined);
  }
  if (!done) {
    throw new StreamError(0, "The answer was cut off: the server closed the stream early", { ...result });
  }
  return result;
}
