// The HTTP client of the UI: same origin as the API, one credential, errors turned into words.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  get isAuthFailure(): boolean {
    return this.status === 401;
  }
}

/** The message of any error body LISA sends: Chalice `{Message}`, authorizer `{message}`, OpenAI `{error: {message}}`. */
/** The path the UI is served under, without its trailing slash: "" at the root of a host, "/prod" when API
 * Gateway serves it at https://<api>/prod/. Every API path is relative to it (same origin, same prefix). */
export function appBase(): string {
  return window.location.pathname.replace(/\/[^/]*$/, "");
}

export function errorMessage(body: unknown, fallback: string): string {
  if (body && typeof body === "object") {
    const record = body as Record<string, unknown>;
    const nested = record.error;
    if (nested && typeof nested === "object" && typeof (nested as Record<string, unknown>).message === "string") {
      return (nested as Record<string, string>).message;
    }
    if (typeof nested === "string") return nested;
    for (const key of ["Message", "message", "detail"]) {
      if (typeof record[key] === "string" && record[key]) return record[key] as string;
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 500);
  return fallback;
}

function describeStatus(status: number): string {
  if (status === 401) return "Your credentials were refused";
  if (status === 403) return "You are not allowed to do this";
  if (status === 404) return "Not found";
  if (status === 413) return "Too large";
  if (status === 429) return "Too many requests; try again shortly";
  if (status >= 500) return `The server failed (HTTP ${status})`;
  return `Request failed (HTTP ${status})`;
}

/** Turn a failed response into an ApiError carrying the server's own words. */
export async function failure(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(response.status, errorMessage(body, describeStatus(response.status)));
}

export type CredentialSource = () => Promise<string | null>;

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
}

export class ApiClient {
  /** `onAuthFailure` runs once per refused request (e.g. an expired key), before the error is thrown. */
  constructor(
    private readonly credential: CredentialSource,
    private readonly onAuthFailure: (error: ApiError) => void,
    private readonly base = appBase(),
  ) {}

  async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const token = await this.credential();
    const headers: Record<string, string> = { Accept: "application/json", ...extra };
    if (token) headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  /** A raw fetch with the credential; network failures become ApiError(0). */
  async fetch(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const init: RequestInit = { method, signal: options.signal };
    if (options.body !== undefined) {
      init.headers = await this.headers({ "Content-Type": "application/json" });
      init.body = JSON.stringify(options.body);
    } else {
      init.headers = await this.headers();
    }
    let response: Response;
    try {
      response = await fetch(this.base + path, init);
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "Cannot reach LISA: check your connection and that the server is running");
    }
    return response;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.fetch(method, path, options);
    if (!response.ok) throw this.refused(await failure(response));
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** Report an auth failure to the app (back to login) and hand the error back for throwing. */
  refused(error: ApiError): ApiError {
    if (error.isAuthFailure) this.onAuthFailure(error);
    return error;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>("GET", path, { signal });
  }
}
