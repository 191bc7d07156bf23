// Documents in context (no RAG repository): files attached to a prompt go up by a presigned S3 PUT, the control
// plane extracts their text, and the prompt carries as much of it as the model's context allows.

import { ApiClient, ApiError } from "./api";
import { announce, byId, el } from "./dom";
import { putFile } from "./documents";

const CONTENT_TYPES: Record<string, string> = {
  txt: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
};
/** The share of the model's prompt budget documents may take: the rest is for the question and the history. */
const DOCUMENT_SHARE = 0.6;

export interface AttachmentText {
  attachmentId: string;
  fileName: string;
  contentType: string;
  text: string;
  chars: number;
  truncated: boolean;
  cutChars: number;
}

/** What a prompt's metadata records of each attachment. */
export interface AttachmentNote {
  attachmentId: string;
  fileName: string;
  chars: number;
  cutChars: number;
}

export function contentTypeOf(fileName: string): string | undefined {
  return CONTENT_TYPES[fileName.split(".").pop()?.toLowerCase() ?? ""];
}

export class AttachmentsApi {
  constructor(private readonly api: ApiClient) {}

  /** Register the file, PUT its bytes where the API says; its id. */
  async upload(file: File): Promise<string> {
    const contentType = contentTypeOf(file.name);
    if (!contentType) throw new ApiError(400, `${file.name}: attach a txt, md, pdf or docx file`);
    const grant = await this.api.request<{ attachmentId: string; uploadUrl: string; uploadHeaders: Record<string, string> }>(
      "POST",
      "/attachments",
      { body: { fileName: file.name, contentType, size: file.size } },
    );
    await putFile(grant.uploadUrl, "PUT", grant.uploadHeaders, file);
    return grant.attachmentId;
  }

  text(attachmentId: string, maxChars: number): Promise<AttachmentText> {
    return this.api.get(`/attachments/${encodeURIComponent(attachmentId)}/text?maxChars=${maxChars}`);
  }
}

/** "(cut 1,200 of 5,000 characters to fit the model's context)" or "". */
export function cutNote(note: { chars: number; cutChars: number }): string {
  if (!note.cutChars) return "";
  const n = (v: number) => v.toLocaleString("en-US");
  return ` (cut ${n(note.cutChars)} of ${n(note.chars)} characters to fit the model's context)`;
}

interface Pending {
  file: File;
  upload: Promise<string>;
}

/** The "Attach documents" control of the composer and the files waiting to go with the next prompt. */
export class AttachmentTray {
  private readonly input = byId<HTMLInputElement>("attach-files");
  private readonly list = byId<HTMLUListElement>("attachment-list");
  private readonly statusEl = byId("attachment-status");
  private pending: Pending[] = [];

  constructor(private readonly api: AttachmentsApi) {
    this.input.accept = Object.keys(CONTENT_TYPES).map((e) => `.${e}`).join(",");
    this.input.addEventListener("change", () => {
      for (const file of Array.from(this.input.files ?? [])) this.add(file);
      this.input.value = "";
    });
  }

  get count(): number {
    return this.pending.length;
  }

  private add(file: File): void {
    if (!contentTypeOf(file.name)) {
      announce(this.statusEl, `${file.name}: attach a txt, md, pdf or docx file.`);
      return;
    }
    const upload = this.api.upload(file);
    const entry: Pending = { file, upload };
    this.pending.push(entry);
    announce(this.statusEl, `Uploading ${file.name}…`);
    upload.then(
      () => announce(this.statusEl, `${file.name} is attached to your next message.`),
      (error: unknown) => {
        this.pending = this.pending.filter((p) => p !== entry);
        this.render();
        announce(this.statusEl, `${file.name} could not be attached: ${error instanceof Error ? error.message : String(error)}`);
      },
    );
    this.render();
  }

  private render(): void {
    this.list.replaceChildren(
      ...this.pending.map((entry) => {
        const remove = el("button", { type: "button", className: "small danger-link", "aria-label": `Remove ${entry.file.name}` }, "Remove");
        remove.addEventListener("click", () => {
          this.pending = this.pending.filter((p) => p !== entry);
          this.render();
          announce(this.statusEl, `${entry.file.name} removed.`);
          this.input.focus();
        });
        return el("li", { className: "attachment" }, el("span", {}, entry.file.name), remove);
      }),
    );
  }

  /** Each document's text in an equal share of `total` characters; the room short ones leave goes to the cut ones. */
  private async fit(ids: string[], total: number): Promise<AttachmentText[]> {
    const share = Math.floor(total / ids.length);
    const texts = await Promise.all(ids.map((id) => this.api.text(id, share)));
    const cut = texts.filter((t) => t.truncated);
    const spare = total - texts.reduce((sum, t) => sum + t.text.length, 0);
    if (!cut.length || spare < cut.length) return texts;
    const more = share + Math.floor(spare / cut.length);
    const again = new Map((await Promise.all(cut.map((t) => this.api.text(t.attachmentId, more)))).map((t) => [t.attachmentId, t]));
    return texts.map((t) => again.get(t.attachmentId) ?? t);
  }

  /**
   * The documents' text for a prompt with `budgetChars` of room (the model's prompt budget less the question), each
   * cut to an equal share, and what the message records of them. The tray is empty afterwards.
   */
  async take(budgetChars: number): Promise<{ block: string; notes: AttachmentNote[] }> {
    if (!this.pending.length) return { block: "", notes: [] };
    const ids = await Promise.all(this.pending.map((p) => p.upload));
    const texts = await this.fit(ids, Math.max(ids.length, Math.floor(budgetChars * DOCUMENT_SHARE)));
    this.pending = [];
    this.render();
    announce(this.statusEl, "");
    const notes = texts.map((t) => ({ attachmentId: t.attachmentId, fileName: t.fileName, chars: t.chars, cutChars: t.cutChars }));
    const block = texts
      .map((t) => `\n\n--- Attached document: ${t.fileName}${cutNote(t)} ---\n${t.text}\n--- End of ${t.fileName} ---`)
      .join("");
    return { block, notes };
  }
}
