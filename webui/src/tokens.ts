// API tokens: every signed-in user creates, lists and revokes their own (POST/GET /me/tokens, DELETE
// /me/tokens/{id}); a new token is shown once, in a dialog, and is gone when the dialog closes (LISA keeps only its
// hash). Administrators also see everyone's tokens through the admin routes (GET/DELETE /tokens).

import { ApiClient, ApiError } from "./api";
import { copyButton } from "./code";
import { announce, el, viewHead } from "./dom";

/** A token's record as the API shows it (chalicelib.auth.models.TokenView): never the token itself. */
export interface TokenView {
  tokenId: string;
  username: string;
  groups: string[];
  isAdmin: boolean;
  /** UNIX seconds; null: never expires. */
  tokenExpiration: number | null;
  description: string;
  createdAt: number;
  createdBy: string;
  updatedAt: number | null;
  /** UNIX seconds of the latest request made with it (recorded at most once a minute); null: not used yet. */
  lastUsedAt: number | null;
}

export interface CreatedToken extends TokenView {
  token: string;
}

const DAY_SECONDS = 24 * 3600;
const MAX_LIFETIME_DAYS = 3650; // the API's own bound on expiresIn (ten years); the configured maximum is lower

export class TokensApi {
  constructor(private readonly api: ApiClient) {}

  async listOwn(): Promise<TokenView[]> {
    return (await this.api.get<{ tokens: TokenView[] }>("/me/tokens")).tokens;
  }

  /** A token for the caller; without `lifetimeDays` it gets the configured default lifetime. */
  create(description: string, lifetimeDays: number | null): Promise<CreatedToken> {
    const body = { description, ...(lifetimeDays ? { expiresIn: lifetimeDays * DAY_SECONDS } : {}) };
    return this.api.request("POST", "/me/tokens", { body });
  }

  revokeOwn(tokenId: string): Promise<unknown> {
    return this.api.request("DELETE", `/me/tokens/${encodeURIComponent(tokenId)}`);
  }

  /** Every user's tokens (admin); null when the caller is not an administrator (403). */
  async listAll(): Promise<TokenView[] | null> {
    try {
      return (await this.api.get<{ tokens: TokenView[] }>("/tokens")).tokens;
    } catch (error) {
      if (error instanceof ApiError && error.status === 403) return null;
      throw error;
    }
  }

  revokeAny(tokenId: string): Promise<unknown> {
    return this.api.request("DELETE", `/tokens/${encodeURIComponent(tokenId)}`);
  }
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A UNIX time as a <time> element in the user's locale. */
export function timeElement(seconds: number): HTMLTimeElement {
  const date = new Date(seconds * 1000);
  return el("time", { datetime: date.toISOString() }, WHEN.format(date));
}

function expiry(token: TokenView, now: number): Node {
  if (token.tokenExpiration === null) return document.createTextNode("never");
  const when = timeElement(token.tokenExpiration);
  return token.tokenExpiration <= now ? el("span", { className: "expired" }, "expired ", when) : when;
}

/** When the token was last used (up to about a minute late: the router records uses once a minute). */
function lastUsed(token: TokenView): Node | string {
  return token.lastUsedAt === null ? "not yet" : timeElement(token.lastUsedAt);
}

function tokenName(token: TokenView): string {
  return token.description || token.tokenId;
}

export interface TokensHost {
  status(message: string): void;
  closed(): void;
}

interface Column {
  header: string;
  cell(token: TokenView, now: number): Node | string;
}

export class TokensView {
  private readonly root: HTMLElement;
  private readonly errorEl = el("p", { className: "error", role: "alert", hidden: true });
  private readonly own = el("div", { className: "token-table" });
  private readonly all = el("section", { className: "token-all", "aria-labelledby": "tokens-all-title", hidden: true });
  private readonly createButton = el("button", { type: "button", className: "primary" }, "New token");

  constructor(
    private readonly api: TokensApi,
    private readonly host: TokensHost,
  ) {
    this.createButton.addEventListener("click", () => this.renderForm());
    this.root = el("section", { id: "tokens-view", className: "page-view", "aria-labelledby": "tokens-title" });
    this.root.append(
      viewHead(this.root, "tokens-title", "API tokens", "Close API tokens", () => this.close()),
      el("p", { className: "hint" },
        "A token lets a program call LISA's API as you, with your groups. LISA shows a new token once: copy it then."),
      this.errorEl,
      this.createButton,
      el("section", { "aria-labelledby": "tokens-own-title" }, el("h3", { id: "tokens-own-title" }, "Your tokens"), this.own),
      this.all,
    );
  }

  get element(): HTMLElement {
    return this.root;
  }

  close(): void {
    this.root.remove();
    this.host.closed();
  }

  open(): Promise<void> {
    return this.load();
  }

  async load(focus = true): Promise<void> {
    let own: TokenView[];
    let all: TokenView[] | null;
    try {
      [own, all] = await Promise.all([this.api.listOwn(), this.api.listAll()]);
    } catch (error) {
      this.fail("The tokens could not be loaded", error);
      return;
    }
    this.renderOwn(own);
    this.renderAll(all);
    if (focus) this.createButton.focus();
  }

  private fail(what: string, error: unknown, where: HTMLElement = this.errorEl): void {
    if (error instanceof ApiError && error.isAuthFailure) return; // the login view says it
    announce(where, `${what}: ${error instanceof Error ? error.message : String(error)}`);
  }

  private renderOwn(tokens: TokenView[]): void {
    if (!tokens.length) {
      this.own.replaceChildren(el("p", { className: "hint" }, "You have no API tokens."));
      return;
    }
    const columns: Column[] = [
      { header: "Name", cell: (t) => tokenName(t) },
      { header: "Created", cell: (t) => timeElement(t.createdAt) },
      { header: "Expires", cell: expiry },
    ];
    this.own.replaceChildren(this.table("Your API tokens", columns, tokens, (t) => this.revoke(t, false)));
  }

  private renderAll(tokens: TokenView[] | null): void {
    this.all.hidden = tokens === null;
    if (tokens === null) return;
    const columns: Column[] = [
      { header: "User", cell: (t) => t.username + (t.isAdmin ? " (admin)" : "") },
      { header: "Name", cell: (t) => tokenName(t) },
      { header: "Created", cell: (t) => timeElement(t.createdAt) },
      { header: "By", cell: (t) => t.createdBy },
      { header: "Expires", cell: expiry },
    ];
    this.all.replaceChildren(
      el("h3", { id: "tokens-all-title" }, "All tokens (administrator)"),
      tokens.length ? this.table("Every user's API tokens", columns, tokens, (t) => this.revoke(t, true))
        : el("p", { className: "hint" }, "No tokens."),
    );
  }

  /** A table of tokens with their last use and a revoke button per row. */
  private table(caption: string, columns: Column[], tokens: TokenView[], revoke: (t: TokenView) => void): HTMLElement {
    const now = Date.now() / 1000;
    const sorted = [...tokens].sort((a, b) => b.createdAt - a.createdAt);
    columns = [...columns, { header: "Last used", cell: lastUsed }];
    const rows = sorted.map((t) => {
      const button = el("button", { type: "button", className: "small danger-link", "aria-label": `Revoke ${tokenName(t)}` },
        "Revoke");
      button.addEventListener("click", () => revoke(t));
      return el("tr", { "data-token-id": t.tokenId },
        ...columns.map((c) => el("td", {}, c.cell(t, now))),
        el("td", {}, button));
    });
    return el("table", { className: "data-table" },
      el("caption", { className: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col" }, c.header)),
        el("th", { scope: "col" }, el("span", { className: "visually-hidden" }, "Actions")))),
      el("tbody", {}, ...rows));
  }

  private async revoke(token: TokenView, asAdmin: boolean): Promise<void> {
    const whose = asAdmin ? ` of ${token.username}` : "";
    if (!window.confirm(`Revoke the token “${tokenName(token)}”${whose}? Programs using it will be refused.`)) return;
    try {
      await (asAdmin ? this.api.revokeAny(token.tokenId) : this.api.revokeOwn(token.tokenId));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.fail("The token could not be revoked", error);
        return;
      }
    }
    announce(this.errorEl, "");
    this.host.status(`Revoked the token “${tokenName(token)}”.`);
    await this.load();
  }

  private renderForm(): void {
    const name = el("input", { id: "token-name", type: "text", maxlength: "1024", required: true });
    const lifetime = el("input", { id: "token-lifetime", type: "number", min: "1", max: String(MAX_LIFETIME_DAYS),
      step: "1", inputmode: "numeric", "aria-describedby": "token-lifetime-hint" });
    const error = el("p", { className: "error", role: "alert", hidden: true });
    const cancel = el("button", { type: "button", className: "small" }, "Cancel");
    const form = el("form", { className: "template-form", novalidate: true, "aria-labelledby": "token-form-title" },
      el("h3", { id: "token-form-title" }, "New API token"),
      el("label", { for: "token-name" }, "Name"),
      name,
      el("label", { for: "token-lifetime" }, "Lifetime in days (optional)"),
      lifetime,
      el("p", { id: "token-lifetime-hint", className: "hint" },
        "Empty: LISA's default lifetime. LISA refuses more than its configured maximum."),
      error,
      el("div", { className: "compare-actions" }, el("button", { type: "submit", className: "primary" }, "Create token"),
        cancel),
    );
    const done = () => {
      form.remove();
      this.createButton.hidden = false;
      this.createButton.focus();
    };
    cancel.addEventListener("click", done);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const description = name.value.trim();
      const raw = lifetime.value.trim();
      const days = raw ? Number(raw) : null;
      const badDays = days !== null && !(Number.isInteger(days) && days >= 1 && days <= MAX_LIFETIME_DAYS);
      name.toggleAttribute("aria-invalid", !description);
      lifetime.toggleAttribute("aria-invalid", badDays);
      const problems = [!description && "Enter a name.",
        badDays && `The lifetime must be a whole number of days from 1 to ${MAX_LIFETIME_DAYS}.`].filter(Boolean);
      if (problems.length) {
        announce(error, problems.join(" "));
        return;
      }
      void this.create(description, days, error, done);
    });
    this.createButton.hidden = true;
    this.createButton.after(form);
    name.focus();
  }

  private async create(description: string, days: number | null, error: HTMLElement, done: () => void): Promise<void> {
    let created: CreatedToken;
    try {
      created = await this.api.create(description, days);
    } catch (failure) {
      this.fail("The token could not be created", failure, error);
      return;
    }
    done();
    await this.load(false);
    showOnce(created, (message) => this.host.status(message), () => this.createButton.focus());
  }
}

/** The new token in a modal dialog, once: closing it removes the dialog and the token with it. */
function showOnce(created: CreatedToken, status: (message: string) => void, closed: () => void): void {
  let secret: string | null = created.token;
  const value = el("input", { id: "new-token-value", type: "text", readonly: true, spellcheck: "false",
    autocomplete: "off", "aria-describedby": "new-token-hint" });
  value.value = secret;
  const close = el("button", { type: "button", className: "primary" }, "Done, I have copied it");
  const expires = created.tokenExpiration === null ? "It never expires." : "";
  const dialog = el("dialog", { className: "token-dialog", "aria-labelledby": "new-token-title" },
    el("h2", { id: "new-token-title" }, `Your new token “${tokenName(created)}”`),
    el("p", { id: "new-token-hint" },
      "Copy it now: this is the only time LISA shows it. When you close this dialog it is gone. ", expires),
    el("label", { for: "new-token-value" }, "Token"),
    el("div", { className: "token-secret" }, value, copyButton("Copy the token", () => secret ?? "", status)),
    ...(created.tokenExpiration !== null ? [el("p", { className: "hint" }, "Expires ", timeElement(created.tokenExpiration))] : []),
    el("div", { className: "compare-actions" }, close),
  );
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    secret = null;
    value.value = "";
    dialog.remove();
    status("The new token is no longer shown.");
    closed();
  });
  document.body.append(dialog);
  dialog.showModal();
  value.focus();
  value.select();
}
