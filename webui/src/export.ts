// Export a chat as a file the user downloads: Markdown to read or share, JSON to keep or process.

import type { Parameters, StoredMessage } from "./lisa";

export interface ExportedChat {
  sessionId: string | null;
  name: string;
  parameters: Parameters;
  messages: StoredMessage[];
}

const AUTHOR: Record<StoredMessage["role"], string> = { user: "You", assistant: "LISA", system: "System" };

/** The chat as Markdown: a heading per turn, answers as the model wrote them, usage and attachments noted. */
export function chatMarkdown(chat: ExportedChat): string {
  const lines = [`# ${chat.name}`, ""];
  if (chat.parameters.model) lines.push(`Model: ${chat.parameters.model}`, "");
  if (chat.parameters.systemPrompt) lines.push(`System prompt: ${chat.parameters.systemPrompt}`, "");
  for (const message of chat.messages) {
    lines.push(`## ${AUTHOR[message.role]}`, "", message.content, "");
    const meta = message.metadata ?? {};
    const notes: string[] = [];
    if (typeof meta.model === "string" && message.role === "assistant") notes.push(`model ${meta.model}`);
    const usage = meta.usage as Record<string, unknown> | undefined;
    if (usage && typeof usage.prompt_tokens === "number" && typeof usage.completion_tokens === "number") {
      notes.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
    }
    if (Array.isArray(meta.attachments)) {
      notes.push(`attached: ${meta.attachments.map((a) => String((a as Record<string, unknown>).fileName)).join(", ")}`);
    }
    if (notes.length) lines.push(`*${notes.join(" · ")}*`, "");
  }
  return lines.join("\n");
}

/** The chat as JSON: exactly what the session stores (messages with their metadata, parameters). */
export function chatJson(chat: ExportedChat): string {
  return `${JSON.stringify({ ...chat, exportedAt: new Date().toISOString() }, null, 2)}\n`;
}

/** A file name from the chat's name: letters, digits and dashes. */
export function fileName(chat: ExportedChat, extension: string): string {
  const stem = chat.name.replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-+|-+$/g, "").slice(0, 60) || "chat";
  return `${stem}.${extension}`;
}

/** Hand `text` to the browser as a download named `name`. */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}
