// Documents of a RAG repository: upload files (presigned S3 PUTs the API hands out) and follow their ingestion.
import { ApiClient, ApiError } from "./api";
import { announce, byId, el } from "./dom";

export interface DocumentInfo {
  documentId: string;
  filename: string;
  status: "INGESTING" | "READY" | "FAILED" | "RETRYING" | string;
  statusReason?: string | null;
  chunkCount?: number;
  updatedAt?: string;
}

interface UploadGrant {
  url: string;
  method: string;
  headers: Record<string, string>;
}

const POLL_MS = 2000;
const POLL_LIMIT_MS = 10 * 60 * 1000; // ingestion of a large PDF can take minutes on small workers
const SHOWN = 20; // the most recent documents listed
// A re-upload of unchanged bytes leaves its record as it was: after this long a finished record counts as the answer.
const UNCHANGED_GRACE_MS = 20_000;
const CLOCK_SKEW_MS = 5_000;
const ACCEPTED = ".txt,.md,.markdown,.html,.htm,.pdf,.docx";

function path(repositoryId: string): string {
  return `/repositories/${encodeURIComponent(repositoryId)}`;
}

/** PUT a file's bytes to a presigned S3 URL (its origin is in the page's CSP connect-src); S3's refusal in words. */
export async function putFile(url: string, method: string, headers: Record<string, string>, file: File): Promise<void> {
  let response: Response;
  try {
    response = await fetch(url, { method, headers, body: file });
  } catch {
    throw new ApiError(0, `${file.name}: the document store could not be reached`);
  }
  if (!response.ok) {
    const detail = (await response.text()).match(/<Message>([^<]*)<\/Message>/)?.[1];
    throw new ApiError(response.status, `${file.name}: upload refused (${detail ?? `HTTP ${response.status}`})`);
  }
}

export class DocumentsApi {
  constructor(private readonly api: ApiClient) {}

  /** Ask for an upload URL, then PUT the file's bytes to S3 with the headers the grant names. */
  async upload(repositoryId: string, file: File): Promise<void> {
    const grant = await this.api.request<UploadGrant>("POST", `${path(repositoryId)}/upload-url`, {
      body: { filename: file.name, ...(file.type ? { contentType: file.type } : {}) },
    });
    await putFile(grant.url, grant.method || "PUT", grant.headers, file);
  }

  async list(repositoryId: string): Promise<DocumentInfo[]> {
    const body = await this.api.get<{ documents?: DocumentInfo[] }>(`${path(repositoryId)}/documents?limit=100`);
    return (body.documents ?? []).sort((a, b) => String(b.updatedAt ?? "").localeCompare(String(a.updatedAt ?? "")));
  }
}

function describe(doc: DocumentInfo): string {
  switch (doc.status) {
    case "READY":
      return `ready, ${doc.chunkCount ?? 0} ${doc.chunkCount === 1 ? "passage" : "passages"}`;
    case "FAILED":
      return `failed: ${doc.statusReason || "no reason given"}`;
    case "RETRYING":
      return "retrying after a temporary error";
    default:
      return "being read…";
  }
}

/** Whether an uploaded file's record shows the outcome of that upload (not an earlier one, nor work in progress). */
function settled(doc: DocumentInfo | undefined, uploadedAt: number): boolean {
  if (!doc || doc.status === "INGESTING" || doc.status === "RETRYING") return false;
  const updated = Date.parse(doc.updatedAt ?? "") || 0;
  return updated >= uploadedAt - CLOCK_SKEW_MS || Date.now() - uploadedAt > UNCHANGED_GRACE_MS;
}

/** The "Add documents" control and the list under the repository picker. */
export class DocumentPanel {
  private readonly input = byId<HTMLInputElement>("document-files");
  private readonly list = byId<HTMLUListElement>("document-list");
  private readonly status = byId("document-status");
  private repositoryId: string | null = null;
  private timer: number | undefined;
  private pollUntil = 0; // keep refreshing while documents are being read, until then
  private readonly awaiting = new Map<string, number>(); // uploaded file name -> when its upload finished

  constructor(private readonly documents: DocumentsApi) {
    this.input.accept = ACCEPTED;
    this.input.addEventListener("change", () => void this.uploadChosen());
  }

  /** Show the documents of `repositoryId` (or nothing for null). */
  show(repositoryId: string | null): void {
    if (repositoryId === this.repositoryId) return;
    this.repositoryId = repositoryId;
    this.list.replaceChildren();
    announce(this.status, "");
    this.input.disabled = repositoryId === null;
    this.pollUntil = Date.now() + POLL_LIMIT_MS;
    this.awaiting.clear();
    if (repositoryId) void this.refresh();
  }

  private async uploadChosen(): Promise<void> {
    const repositoryId = this.repositoryId;
    const files = Array.from(this.input.files ?? []);
    if (!repositoryId || !files.length) return;
    this.input.disabled = true;
    const failures: string[] = [];
    try {
      for (const [index, file] of files.entries()) {
        announce(this.status, `Uploading ${file.name} (${index + 1} of ${files.length})…`);
        try {
          await this.documents.upload(repositoryId, file);
          this.awaiting.set(file.name, Date.now());
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
      }
    } finally {
      this.input.value = "";
      this.input.disabled = false;
    }
    const uploaded = files.length - failures.length;
    announce(
      this.status,
      [uploaded ? `Uploaded ${uploaded} ${uploaded === 1 ? "file" : "files"}; reading them…` : "", ...failures]
        .filter(Boolean)
        .join(" "),
    );
    this.pollUntil = Date.now() + POLL_LIMIT_MS;
    await this.refresh();
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const repositoryId = this.repositoryId;
    if (!repositoryId) return;
    let docs: DocumentInfo[];
    try {
      docs = await this.documents.list(repositoryId);
    } catch (error) {
      announce(this.status, `The documents could not be listed: ${error instanceof Error ? error.message : error}`);
      return;
    }
    if (repositoryId !== this.repositoryId) return;
    this.list.replaceChildren(
      ...docs.slice(0, SHOWN).map((doc) =>
        el(
          "li",
          { className: `document ${doc.status.toLowerCase()}` },
          el("span", { className: "name" }, doc.filename),
          " — ",
          el("span", { className: "state" }, describe(doc)),
        ),
      ),
    );
    const byName = new Map(docs.map((d) => [d.filename, d]));
    const waiting = [...this.awaiting].filter(([name, uploadedAt]) => !settled(byName.get(name), uploadedAt));
    const busy = waiting.length > 0 || docs.some((d) => d.status === "INGESTING" || d.status === "RETRYING");
    if (busy && Date.now() < this.pollUntil) {
      this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
      return;
    }
    if (this.awaiting.size) {
      const failed = [...this.awaiting.keys()].some((name) => byName.get(name)?.status === "FAILED");
      this.awaiting.clear();
      if (busy) announce(this.status, "Still reading; reopen the parameters later to check.");
      else announce(this.status, failed ? "Done, with failures (see the list)." : "Documents ready.");
    }
  }
}
