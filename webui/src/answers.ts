// What the UI knows about an answer: the stored message built from a finished stream, and its usage in words.

import type { ApiClient } from "./api";
import type { StoredMessage } from "./lisa";
import { ChatRequest, StreamError, StreamResult, streamChat } from "./stream";

function tokenCount(usage: unknown, key: string): number | null {
  const value = usage && typeof usage === "object" ? (usage as Record<string, unknown>)[key] : undefined;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** "12 prompt + 40 completion tokens · first token 0.82 s" from an answer's metadata ("" when none is known). */
export function usageLine(meta: Record<string, unknown>): string {
  const parts: string[] = [];
  const prompt = tokenCount(meta.usage, "prompt_tokens");
  const completion = tokenCount(meta.usage, "completion_tokens");
  if (prompt !== null && completion !== null) parts.push(`${prompt} prompt + ${completion} completion tokens`);
  if (typeof meta.ttftMs === "number") parts.push(`first token ${(meta.ttftMs / 1000).toFixed(2)} s`);
  return parts.join(" · ");
}

/** The chat's token totals over its answers that report usage. */
export function sessionTotals(messages: StoredMessage[]): string {
  let prompt = 0;
  let completion = 0;
  let answers = 0;
  for (const message of messages) {
    const p = tokenCount(message.metadata?.usage, "prompt_tokens");
    const c = tokenCount(message.metadata?.usage, "completion_tokens");
    if (message.role !== "assistant" || p === null || c === null) continue;
    prompt += p;
    completion += c;
    answers += 1;
  }
  if (!answers) return "";
  const what = answers === 1 ? "1 answer" : `${answers} answers`;
  return `This chat: ${prompt} prompt + ${completion} completion tokens in ${what}`;
}

/** The stored answer: its text and what is known about it (model, how it ended, usage, time to first token). */
export function assistantMessage(model: string, result: StreamResult, failure: string | null, firstTokenMs: number | null): StoredMessage {
  return {
    role: "assistant",
    content: result.content,
    createdAt: new Date().toISOString(),
    metadata: {
      model,
      ...(result.finishReason ? { finishReason: result.finishReason } : {}),
      ...(result.stopped ? { stopped: true } : {}),
      ...(failure ? { error: failure } : {}),
      ...(result.usage ? { usage: result.usage } : {}),
      ...(firstTokenMs !== null ? { ttftMs: firstTokenMs } : {}),
      ...(result.sources.length ? { sources: result.sources.map((s) => ({ ...s })) } : {}),
    },
  };
}

export interface TimedAnswer {
  result: StreamResult;
  /** Why the answer broke off part-way (its words so far are in `result`), or null. */
  failure: string | null;
  /** Time to first token as the browser saw it: from sending the request to the first piece of text. */
  firstTokenMs: number | null;
}

/** Stream one answer, timing its first token; an error before any answer (e.g. a 400) is thrown as is. */
export async function streamTimed(
  api: ApiClient,
  request: ChatRequest,
  signal: AbortSignal,
  onText: (soFar: string) => void,
): Promise<TimedAnswer> {
  const started = performance.now();
  let firstTokenMs: number | null = null;
  const onDelta = (_delta: string, soFar: string) => {
    firstTokenMs ??= Math.round(performance.now() - started);
    onText(soFar);
  };
  try {
    const result = await streamChat(api, request, { signal, onDelta });
    return { result, failure: null, firstTokenMs };
  } catch (error) {
    if (error instanceof StreamError) return { result: error.partial, failure: error.message, firstTokenMs };
    throw error;
  }
}
