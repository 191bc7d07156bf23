// The chat application: login, model picker, sessions, parameters, streaming answers.

import { ApiClient, ApiError, appBase } from "./api";
import {
  Credential,
  UiConfig,
  apiKeyCredential,
  beginOidcLogin,
  clearCredential,
  completeOidcLogin,
  loadCredential,
  oidcLogoutUrl,
  refreshOidc,
  saveCredential,
} from "./auth";
import { announce, byId, el, perFrame } from "./dom";
import {
  ModelChoice,
  Parameters,
  Repository,
  SessionSummary,
  SessionsApi,
  StoredMessage,
  loadModels,
  loadRepositories,
  newSessionId,
} from "./lisa";
import { DocumentPanel, DocumentsApi } from "./documents";
import { renderMarkdown } from "./markdown";
import { addCodeToolbars, copyButton } from "./code";
import { TimedAnswer, assistantMessage, sessionTotals, streamTimed, usageLine } from "./answers";
import { ComparePanel } from "./compare";
import { TemplatesApi, TemplatesView } from "./templates";
import { TokensApi, TokensView } from "./tokens";
import { AttachmentNote, AttachmentTray, AttachmentsApi, cutNote } from "./attachments";
import { ExportedChat, chatJson, chatMarkdown, download, fileName } from "./export";
import { ChatMessage, ChatRequest, Source } from "./stream";

const FALLBACK_DEFAULTS = { temperature: 0.7, topP: 1, maxTokens: 512 };
const RAG_CHUNKS = 4;
const SAVE_DELAY_MS = 400;
const CHAT_NAME_CHARS = 60; // the sessions API's own default-name length

/** A page shown in place of the conversation (API tokens, usage): one at a time, closed by its toggle. */
interface PageView {
  readonly element: HTMLElement;
  /** Load and show its content, once the element is on the page. */
  open(): Promise<void>;
  close(): void;
}

interface Current {
  id: string | null;
  name: string;
  version: number;
  messages: StoredMessage[];
}

export class ChatApp {
  private config: UiConfig = { authority: null, clientId: null, scope: "openid profile email" };
  private credential: Credential | null = null;
  private readonly api: ApiClient;
  private readonly sessions: SessionsApi;
  private readonly documentPanel: DocumentPanel;
  private models: ModelChoice[] = [];
  private repositories: Repository[] = [];
  private summaries: SessionSummary[] = [];
  private current: Current = { id: null, name: "New chat", version: 0, messages: [] };
  private params: Parameters = {};
  private streaming: AbortController | null = null;
  private signingOut = false;
  private saveTimer: number | undefined;
  private compare: ComparePanel | null = null;
  private templatesView: TemplatesView | null = null;
  private page: { toggleId: string; view: PageView } | null = null;
  private admin: Promise<boolean> | null = null;
  private readonly templatesApi: TemplatesApi;
  private readonly tokensApi: TokensApi;
  private readonly attachmentTray: AttachmentTray;

  // elements
  private readonly loginView = byId("login-view");
  private readonly chatView = byId("chat-view");
  private readonly loginError = byId("login-error");
  private readonly apiKeyInput = byId<HTMLInputElement>("api-key");
  private readonly modelSelect = byId<HTMLSelectElement>("model-select");
  private readonly sessionList = byId<HTMLUListElement>("session-list");
  private readonly messagesEl = byId<HTMLOListElement>("messages");
  private readonly prompt = byId<HTMLTextAreaElement>("prompt");
  private readonly sendButton = byId<HTMLButtonElement>("send");
  private readonly stopButton = byId<HTMLButtonElement>("stop");
  private readonly alertEl = byId("alert");
  private readonly statusEl = byId("status");
  private readonly paramsPanel = byId("params-panel");
  private readonly sessionsPanel = byId("sessions-panel");

  constructor() {
    this.api = new ApiClient(
      () => this.token(),
      (error) => this.onAuthFailure(error),
    );
    this.sessions = new SessionsApi(this.api);
    this.templatesApi = new TemplatesApi(this.api);
    this.tokensApi = new TokensApi(this.api);
    this.attachmentTray = new AttachmentTray(new AttachmentsApi(this.api));
    this.documentPanel = new DocumentPanel(new DocumentsApi(this.api));
  }

  // ---- start and sign-in -------------------------------------------------------------------------------------
  async start(): Promise<void> {
    this.wireLogin();
    this.wireChat();
    this.wireParameters();
    this.config = await this.loadUiConfig();
    byId("sso-block").hidden = !(this.config.authority && this.config.clientId);
    byId("loading").hidden = true;
    try {
      const fromRedirect = await completeOidcLogin(this.config);
      if (fromRedirect) saveCredential(fromRedirect);
    } catch (error) {
      this.showLogin(messageOf(error));
      return;
    }
    this.credential = loadCredential();
    if (this.credential) await this.enter();
    else this.showLogin("");
  }

  private async loadUiConfig(): Promise<UiConfig> {
    try {
      const response = await fetch(`${appBase()}/ui/config`, { headers: { Accept: "application/json" } });
      if (response.ok) return { ...this.config, ...((await response.json()) as Partial<UiConfig>) };
    } catch {
      // no config route: API-key login only
    }
    return this.config;
  }

  private async token(): Promise<string | null> {
    const credential = this.credential;
    if (!credential) return null;
    const soon = Date.now() / 1000 + 30;
    if (credential.kind === "oidc" && credential.expiresAt && credential.expiresAt < soon) {
      const refreshed = await refreshOidc(this.config, credential);
      if (refreshed) {
        this.credential = refreshed;
        saveCredential(refreshed);
        return refreshed.token;
      }
    }
    return credential.token;
  }

  private wireLogin(): void {
    byId<HTMLFormElement>("apikey-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = this.apiKeyInput.value.trim();
      if (!key) {
        announce(this.loginError, "Enter your API key.");
        this.apiKeyInput.setAttribute("aria-invalid", "true");
        this.apiKeyInput.focus();
        return;
      }
      this.apiKeyInput.removeAttribute("aria-invalid");
      this.credential = apiKeyCredential(key);
      saveCredential(this.credential);
      this.apiKeyInput.value = "";
      void this.enter();
    });
    byId("sso-login").addEventListener("click", () => {
      beginOidcLogin(this.config).catch((error) => announce(this.loginError, messageOf(error)));
    });
  }

  /** The login view; focus goes where the user signs in again (the API key field after a refused key). */
  private showLogin(message: string, refused?: Credential["kind"]): void {
    this.chatView.hidden = true;
    this.loginView.hidden = false;
    byId("loading").hidden = true;
    announce(this.loginError, message);
    const ssoAvailable = !byId("sso-block").hidden;
    (ssoAvailable && refused !== "apikey" ? byId("sso-login") : this.apiKeyInput).focus();
  }

  /** Load what the chat needs with the current credential; a refused credential sends the user back to login. */
  private async enter(): Promise<void> {
    this.signingOut = false;
    this.admin = null; // a new sign-in may be someone else
    let models: ModelChoice[];
    try {
      models = await loadModels(this.api);
    } catch (error) {
      if (error instanceof ApiError && error.isAuthFailure) return; // onAuthFailure showed the login
      this.showLogin(`LISA could not list the models: ${messageOf(error)}`);
      return;
    }
    this.models = models;
    this.loginView.hidden = true;
    this.chatView.hidden = false;
    byId("who").textContent = this.credential ? `Signed in: ${this.credential.label}` : "";
    this.renderModels();
    this.resetParameters();
    this.newChat();
    const modelsToggle = byId("toggle-models");
    modelsToggle.hidden = true; // administrators only (the API refuses others anyway)
    await Promise.all([this.refreshSessions(), this.refreshRepositories(),
      this.isAdmin().then((admin) => (modelsToggle.hidden = !admin), () => undefined)]);
  }

  private onAuthFailure(error: ApiError): void {
    if (this.signingOut) return;
    this.signingOut = true;
    this.streaming?.abort();
    const kind = this.credential?.kind;
    this.credential = null;
    clearCredential();
    const what = kind === "oidc" ? "Your sign-in has expired or was refused" : "Your API key was refused";
    this.showLogin(`${what} (${error.message}). Please sign in again.`, kind);
  }

  private async signOut(): Promise<void> {
    const credential = this.credential;
    this.streaming?.abort();
    this.signingOut = true;
    this.credential = null;
    clearCredential();
    const logout = credential ? await oidcLogoutUrl(this.config, credential) : null;
    if (logout) window.location.assign(logout);
    else this.showLogin("You are signed out.");
  }

  // ---- models and repositories -----------------------------------------------------------------------------
  private renderModels(): void {
    this.modelSelect.replaceChildren();
    if (!this.models.length) {
      this.modelSelect.append(el("option", { value: "" }, "No text-generation models"));
      this.modelSelect.disabled = true;
      this.showAlert("No text-generation model is available. An administrator must add one to the registry.");
      return;
    }
    this.modelSelect.disabled = false;
    for (const model of this.models) {
      this.modelSelect.append(el("option", { value: model.id, disabled: !model.available }, model.label));
    }
    const first = this.models.find((m) => m.available) ?? this.models[0];
    this.modelSelect.value = first.id;
  }

  private selectedModel(): ModelChoice | undefined {
    return this.models.find((m) => m.id === this.modelSelect.value);
  }

  private async refreshRepositories(): Promise<void> {
    try {
      this.repositories = await loadRepositories(this.api);
    } catch (error) {
      this.repositories = [];
      if (!(error instanceof ApiError && error.isAuthFailure)) {
        this.showAlert(`Document repositories could not be loaded: ${messageOf(error)}`);
      }
    }
    const select = byId<HTMLSelectElement>("repository-select");
    select.replaceChildren(...this.repositories.map((r) => el("option", { value: r.id }, r.label)));
    byId("rag-fieldset").hidden = this.repositories.length === 0;
    this.applyParametersToForm();
  }

  // ---- sessions --------------------------------------------------------------------------------------------
  private async refreshSessions(): Promise<void> {
    try {
      this.summaries = await this.sessions.list();
    } catch (error) {
      if (!(error instanceof ApiError && error.isAuthFailure)) {
        this.showAlert(`Your chats could not be loaded: ${messageOf(error)}`);
      }
      return;
    }
    this.renderSessions();
  }

  private renderSessions(): void {
    byId("sessions-empty").hidden = this.summaries.length > 0;
    byId("delete-all").hidden = this.summaries.length === 0;
    this.sessionList.replaceChildren(
      ...this.summaries.map((summary) => {
        const isCurrent = summary.sessionId === this.current.id;
        const open = el(
          "button",
          { type: "button", className: "session-open", "aria-current": isCurrent ? "true" : undefined },
          summary.name,
        );
        open.addEventListener("click", () => void this.openSession(summary.sessionId));
        const rename = el("button", { type: "button", className: "small", "aria-label": `Rename chat ${summary.name}` }, "Rename");
        rename.addEventListener("click", () => this.startRename(item, summary));
        const remove = el("button", { type: "button", className: "small danger-link", "aria-label": `Delete chat ${summary.name}` }, "Delete");
        remove.addEventListener("click", () => void this.deleteSession(summary));
        const item = el("li", { className: isCurrent ? "session current" : "session", "data-session-id": summary.sessionId },
          open,
          el("span", { className: "session-actions" }, rename, remove),
        );
        return item;
      }),
    );
  }

  private startRename(item: HTMLLIElement, summary: SessionSummary): void {
    const inputId = `rename-${summary.sessionId}`;
    const input = el("input", { id: inputId, type: "text", value: summary.name, maxlength: "200", required: true });
    const save = el("button", { type: "submit", className: "small primary" }, "Save");
    const cancel = el("button", { type: "button", className: "small" }, "Cancel");
    const form = el("form", { className: "rename-form" },
      el("label", { for: inputId, className: "visually-hidden" }, `New name for chat ${summary.name}`),
      input, save, cancel);
    const restore = () => {
      this.renderSessions();
      const again = this.sessionList.querySelector<HTMLElement>(`[data-session-id="${CSS.escape(summary.sessionId)}"] .session-open`);
      again?.focus();
    };
    cancel.addEventListener("click", restore);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation(); // cancel the rename only, not the panel around it
        restore();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = input.value.trim();
      if (!name) {
        input.setAttribute("aria-invalid", "true");
        this.showAlert("A chat name cannot be empty.");
        return;
      }
      void this.rename(summary, name).then(restore);
    });
    item.replaceChildren(form);
    input.focus();
    input.select();
  }

  private async rename(summary: SessionSummary, name: string): Promise<void> {
    try {
      const updated = await this.sessions.update(summary.sessionId, summary.version, { name });
      this.upsertSummary(updated);
      if (this.current.id === updated.sessionId) {
        this.current.version = updated.version;
        this.setTitle(updated.name);
      }
      this.setStatus(`Renamed to “${updated.name}”.`);
    } catch (error) {
      this.reportError("The chat could not be renamed", error);
    }
  }

  private async deleteSession(summary: SessionSummary): Promise<void> {
    if (!window.confirm(`Delete the chat “${summary.name}”? This cannot be undone.`)) return;
    try {
      await this.sessions.delete(summary.sessionId);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.reportError("The chat could not be deleted", error);
        return;
      }
    }
    this.summaries = this.summaries.filter((s) => s.sessionId !== summary.sessionId);
    if (this.current.id === summary.sessionId) this.newChat();
    this.renderSessions();
    this.setStatus(`Deleted “${summary.name}”.`);
    byId("new-chat").focus();
  }

  private async deleteAll(): Promise<void> {
    if (!window.confirm("Delete all your chats? This cannot be undone.")) return;
    try {
      const { deleted } = await this.sessions.deleteAll();
      this.summaries = [];
      this.newChat();
      this.renderSessions();
      this.setStatus(`Deleted ${deleted} chats.`);
    } catch (error) {
      this.reportError("Your chats could not be deleted", error);
    }
  }

  private upsertSummary(summary: SessionSummary): void {
    this.summaries = [summary, ...this.summaries.filter((s) => s.sessionId !== summary.sessionId)].sort((a, b) =>
      b.updatedAt.localeCompare(a.updatedAt),
    );
    this.renderSessions();
  }

  private async openSession(id: string): Promise<void> {
    this.streaming?.abort();
    this.compare?.close();
    this.templatesView?.close();
    this.page?.view.close();
    this.closeNarrowPanels();
    let session;
    try {
      session = await this.sessions.get(id);
    } catch (error) {
      this.reportError("The chat could not be opened", error);
      if (error instanceof ApiError && error.status === 404) await this.refreshSessions();
      return;
    }
    this.current = { id: session.sessionId, name: session.name, version: session.version, messages: session.messages };
    this.params = { ...session.parameters };
    if (session.parameters.model && this.models.some((m) => m.id === session.parameters.model)) {
      this.modelSelect.value = session.parameters.model;
    }
    this.applyParametersToForm();
    this.setTitle(session.name);
    this.renderMessages();
    this.renderSessions();
    this.clearAlert();
    this.prompt.focus();
  }

  private newChat(): void {
    this.streaming?.abort();
    this.compare?.close();
    this.templatesView?.close();
    this.page?.view.close();
    this.current = { id: null, name: "New chat", version: 0, messages: [] };
    this.setTitle("New chat");
    this.renderMessages();
    this.renderSessions();
    this.clearAlert();
    this.setStatus("");
  }

  // ---- parameters ------------------------------------------------------------------------------------------
  private wireParameters(): void {
    const form = byId<HTMLFormElement>("params-form");
    form.addEventListener("input", () => this.readParametersFromForm());
    form.addEventListener("change", () => this.readParametersFromForm());
    byId("reset-params").addEventListener("click", () => {
      this.resetParameters();
      this.scheduleSave();
    });
    this.modelSelect.addEventListener("change", () => {
      this.params.model = this.modelSelect.value;
      this.scheduleSave();
    });
  }

  private resetParameters(): void {
    const model = this.selectedModel();
    const defaults = model?.defaults ?? {};
    this.params = {
      model: model?.id ?? null,
      systemPrompt: this.params.systemPrompt ?? null,
      temperature: defaults.temperature ?? FALLBACK_DEFAULTS.temperature,
      topP: defaults.topP ?? FALLBACK_DEFAULTS.topP,
      topK: defaults.topK ?? null,
      maxTokens: defaults.maxTokens ?? FALLBACK_DEFAULTS.maxTokens,
      ragEnabled: false,
      repositoryId: null,
    };
    this.applyParametersToForm();
  }

  private applyParametersToForm(): void {
    const p = this.params;
    const set = (id: string, value: string) => (byId<HTMLInputElement>(id).value = value);
    byId<HTMLTextAreaElement>("system-prompt").value = p.systemPrompt ?? "";
    set("temperature", String(p.temperature ?? FALLBACK_DEFAULTS.temperature));
    set("top-p", String(p.topP ?? FALLBACK_DEFAULTS.topP));
    set("top-k", p.topK ? String(p.topK) : "");
    set("max-tokens", String(p.maxTokens ?? FALLBACK_DEFAULTS.maxTokens));
    byId<HTMLInputElement>("rag-enabled").checked = Boolean(p.ragEnabled) && this.repositories.length > 0;
    const repo = byId<HTMLSelectElement>("repository-select");
    if (p.repositoryId && this.repositories.some((r) => r.id === p.repositoryId)) repo.value = p.repositoryId;
    repo.disabled = !byId<HTMLInputElement>("rag-enabled").checked;
    this.documentPanel.show(repo.value || null);
    this.showParameterValues();
  }

  private showParameterValues(): void {
    byId("temperature-value").textContent = Number(byId<HTMLInputElement>("temperature").value).toFixed(2);
    byId("top-p-value").textContent = Number(byId<HTMLInputElement>("top-p").value).toFixed(2);
  }

  private readParametersFromForm(): void {
    const errors: string[] = [];
    const integer = (id: string, label: string, min: number, max: number): number | null => {
      const input = byId<HTMLInputElement>(id);
      const raw = input.value.trim();
      if (!raw) return null;
      const value = Number(raw);
      const ok = Number.isInteger(value) && value >= min && value <= max;
      input.toggleAttribute("aria-invalid", !ok);
      if (!ok) errors.push(`${label} must be a whole number from ${min} to ${max}.`);
      return ok ? value : null;
    };
    const ragEnabled = byId<HTMLInputElement>("rag-enabled").checked && this.repositories.length > 0;
    byId<HTMLSelectElement>("repository-select").disabled = !ragEnabled;
    this.params = {
      ...this.params,
      systemPrompt: byId<HTMLTextAreaElement>("system-prompt").value || null,
      temperature: Number(byId<HTMLInputElement>("temperature").value),
      topP: Number(byId<HTMLInputElement>("top-p").value),
      topK: integer("top-k", "Top k", 1, 1000),
      maxTokens: integer("max-tokens", "Max tokens", 1, 131072) ?? this.params.maxTokens,
      ragEnabled,
      repositoryId: ragEnabled ? byId<HTMLSelectElement>("repository-select").value || null : null,
    };
    this.documentPanel.show(byId<HTMLSelectElement>("repository-select").value || null);
    this.showParameterValues();
    announce(byId("params-error"), errors.join(" "));
    if (!errors.length) this.scheduleSave();
  }

  /** Persist the parameters of a saved chat shortly after the last change. */
  private scheduleSave(): void {
    window.clearTimeout(this.saveTimer);
    if (!this.current.id) return;
    this.saveTimer = window.setTimeout(() => void this.saveParameters(), SAVE_DELAY_MS);
  }

  private async saveParameters(): Promise<void> {
    const id = this.current.id;
    if (!id) return;
    try {
      const updated = await this.sessions.update(id, this.current.version, { parameters: this.sessionParameters() });
      if (this.current.id === id) this.current.version = updated.version;
      this.upsertSummary(updated);
      this.setStatus("Parameters saved.");
    } catch (error) {
      this.reportError("The parameters could not be saved", error);
    }
  }

  private sessionParameters(): Parameters {
    return { ...this.params, model: this.modelSelect.value || null };
  }

  // ---- chatting --------------------------------------------------------------------------------------------
  private wireChat(): void {
    byId<HTMLFormElement>("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    this.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      }
    });
    this.stopButton.addEventListener("click", () => this.streaming?.abort());
    byId("new-chat").addEventListener("click", () => {
      this.closeNarrowPanels();
      this.newChat();
      this.prompt.focus();
    });
    byId("delete-all").addEventListener("click", () => void this.deleteAll());
    byId("toggle-compare").addEventListener("click", () => this.toggleCompare());
    byId("toggle-templates").addEventListener("click", () => this.toggleTemplates());
    byId("toggle-tokens").addEventListener("click", () => void this.togglePage("toggle-tokens", (closed) => this.tokensPage(closed)));
    byId("toggle-usage").addEventListener("click", () => void this.togglePage("toggle-usage", (closed) => this.usagePage(closed)));
    byId("toggle-models").addEventListener("click", () => void this.togglePage("toggle-models", (closed) => this.modelsPage(closed)));
    byId("export-markdown").addEventListener("click", () => {
      const chat = this.exported();
      download(fileName(chat, "md"), "text/markdown", chatMarkdown(chat));
    });
    byId("export-json").addEventListener("click", () => {
      const chat = this.exported();
      download(fileName(chat, "json"), "application/json", chatJson(chat));
    });
    byId("sign-out").addEventListener("click", () => void this.signOut());
    this.wireToggle("toggle-params", this.paramsPanel);
    this.wireToggle("toggle-sessions", this.sessionsPanel, "open");
  }

  private wireToggle(buttonId: string, panel: HTMLElement, openClass?: string): void {
    const button = byId<HTMLButtonElement>(buttonId);
    const setOpen = (open: boolean) => {
      button.setAttribute("aria-expanded", String(open));
      if (openClass) panel.classList.toggle(openClass, open);
      else panel.hidden = !open;
    };
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      setOpen(open);
      if (open) panel.querySelector<HTMLElement>("textarea, input, select, button")?.focus();
    });
    panel.querySelector("[data-close]")?.addEventListener("click", () => {
      setOpen(false);
      button.focus();
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        event.preventDefault();
        setOpen(false);
        button.focus();
      }
    });
  }

  private closeNarrowPanels(): void {
    this.sessionsPanel.classList.remove("open");
    byId("toggle-sessions").setAttribute("aria-expanded", "false");
  }

  private async send(): Promise<void> {
    const text = this.prompt.value.trim();
    if (!text || this.streaming) return;
    const model = this.chatModel();
    if (!model) return;
    this.clearAlert();
    this.setStatus("Sending…"); // no earlier "Answer complete." stays on screen while this one is on its way
    const userMessage: StoredMessage = { role: "user", content: text, createdAt: new Date().toISOString() };
    if (this.attachmentTray.count) {
      this.setStatus("Reading the attached documents…");
      try {
        const room = model.promptChars - text.length - (this.params.systemPrompt?.length ?? 0);
        const { block, notes } = await this.attachmentTray.take(room);
        userMessage.content = text + block;
        userMessage.metadata = { typed: text, attachments: notes.map((n) => ({ ...n })) };
      } catch (error) {
        this.setStatus("");
        this.reportError("The attached documents could not be read", error);
        return;
      }
    }
    const history = [...this.current.messages];
    this.prompt.value = "";
    this.current.messages.push(userMessage);
    this.messagesEl.append(this.messageItem(userMessage, this.current.messages.length - 1));

    if (!(await this.saveUserMessage(userMessage))) {
      this.current.messages.pop();
      this.messagesEl.lastElementChild?.remove();
      this.prompt.value = text;
      return;
    }
    await this.answer(model, history, userMessage);
  }

  /** The picked model when it can answer; otherwise says so and returns undefined. */
  private chatModel(): ModelChoice | undefined {
    const model = this.selectedModel();
    if (!model || !model.available) {
      this.showAlert("Pick an available model first.");
      this.modelSelect.focus();
      return undefined;
    }
    return model;
  }

  /** Stream the answer to `userMessage` (already the last message, and saved), show it and save it. */
  private async answer(model: ModelChoice, history: StoredMessage[], userMessage: StoredMessage): Promise<void> {
    const request = this.chatRequest(model, history, userMessage);
    const { item, content } = this.streamingItem();
    const controller = new AbortController();
    this.streaming = controller;
    this.setBusy(true);
    this.setStatus("LISA is answering…");
    const render = perFrame((soFar: string) => (content.innerHTML = renderMarkdown(soFar)));
    let answer: TimedAnswer;
    try {
      answer = await streamTimed(this.api, request, controller.signal, render);
    } catch (error) {
      this.streaming = null;
      this.setBusy(false);
      item.remove();
      this.setStatus("");
      this.renderMessages();
      if (!(error instanceof ApiError && error.isAuthFailure)) this.reportError("LISA could not answer", error);
      return;
    }
    const { result, failure, firstTokenMs } = answer;
    this.streaming = null;
    this.setBusy(false);
    const assistant = assistantMessage(model.id, result, failure, firstTokenMs);
    item.remove();
    this.current.messages.push(assistant);
    this.renderMessages();
    if (failure) this.showAlert(`The answer failed part-way: ${failure}`);
    // saved first, then said: "Answer complete." means the answer is also in the session
    if (this.current.id && (assistant.content || failure || result.stopped)) await this.appendToSession([assistant]);
    this.setStatus(result.stopped ? "Stopped. The partial answer is kept." : failure ? "" : "Answer complete.");
    if (!this.signingOut) this.prompt.focus();
  }

  // ---- compare -------------------------------------------------------------------------------------------
  private toggleCompare(): void {
    if (this.compare) {
      this.compare.close();
      return;
    }
    this.templatesView?.close();
    this.page?.view.close();
    const panel = new ComparePanel(
      {
        api: this.api,
        models: () => this.models,
        parameters: () => this.sessionParameters(),
        request: (model, prompt, parameters) => this.chatRequest(model, this.current.messages, prompt, parameters),
        choose: (prompt, answer) => this.continueWith(prompt, answer),
        status: (message) => this.setStatus(message),
        closed: () => {
          this.compare = null;
          byId("chat").classList.remove("has-view");
          byId("toggle-compare").setAttribute("aria-expanded", "false");
          byId("toggle-compare").focus();
        },
      },
      this.prompt.value,
    );
    this.compare = panel;
    byId("chat-title").after(panel.element);
    byId("chat").classList.add("has-view");
    byId("toggle-compare").setAttribute("aria-expanded", "true");
    panel.focus();
  }

  // ---- prompt templates ----------------------------------------------------------------------------------
  private toggleTemplates(): void {
    if (this.templatesView) {
      this.templatesView.close();
      return;
    }
    this.compare?.close();
    this.page?.view.close();
    const toggle = byId("toggle-templates");
    const view = new TemplatesView(this.templatesApi, {
      usePersona: (template) => {
        this.newChat();
        this.params.systemPrompt = template.body;
        this.applyParametersToForm();
        this.setStatus(`New chat with the persona “${template.title}” as its system prompt.`);
        this.prompt.focus();
      },
      fillPrompt: (text, template) => {
        this.prompt.value = text;
        this.setStatus(`The message box holds “${template.title}”, filled in: edit it or send it.`);
        this.prompt.focus();
      },
      status: (message) => this.setStatus(message),
      closed: () => {
        this.templatesView = null;
        byId("chat").classList.remove("has-view");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      },
    });
    this.templatesView = view;
    byId("chat-title").after(view.element);
    byId("chat").classList.add("has-view");
    toggle.setAttribute("aria-expanded", "true");
    void view.load();
  }

  // ---- API tokens and usage ------------------------------------------------------------------------------
  /** Open the page behind `toggleId` in place of the conversation, or close it when it is the one open. */
  private async togglePage(toggleId: string, open: (closed: () => void) => Promise<PageView>): Promise<void> {
    const wasOpen = this.page?.toggleId === toggleId;
    this.compare?.close();
    this.templatesView?.close();
    this.page?.view.close();
    if (wasOpen) return;
    const toggle = byId<HTMLButtonElement>(toggleId);
    toggle.disabled = true; // while the page's module loads: one click, one page
    let view: PageView;
    try {
      view = await open(() => {
        if (this.page?.view === view) this.page = null;
        byId("chat").classList.remove("has-view");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      });
    } catch (error) {
      this.reportError("The page could not be opened", error);
      return;
    } finally {
      toggle.disabled = false;
    }
    this.page = { toggleId, view };
    byId("chat-title").after(view.element);
    byId("chat").classList.add("has-view");
    toggle.setAttribute("aria-expanded", "true");
    await view.open();
  }

  private async tokensPage(closed: () => void): Promise<PageView> {
    return new TokensView(this.tokensApi, { status: (message) => this.setStatus(message), closed });
  }

  /** The usage page's module (and its chart library) loads on first use. */
  private async usagePage(closed: () => void): Promise<PageView> {
    const { UsageApi, UsageView } = await import("./usage");
    return new UsageView(new UsageApi(this.api), {
      models: this.models.map((m) => m.id),
      isAdmin: () => this.isAdmin(),
      closed,
    });
  }

  /** The Models page (administrators) loads on first use: its module is not in the chat's first download. */
  private async modelsPage(closed: () => void): Promise<PageView> {
    const { ModelsApi, ModelsView } = await import("./models");
    return new ModelsView(new ModelsApi(this.api), { status: (message) => this.setStatus(message), closed });
  }

  /** Whether the caller is an administrator: the admin token list answers them only (asked once per sign-in). */
  private isAdmin(): Promise<boolean> {
    this.admin ??= this.tokensApi.listAll().then((all) => all !== null);
    return this.admin;
  }

  /** The compared prompt and the answer the user picked become the chat's next turn. */
  private async continueWith(prompt: StoredMessage, answer: StoredMessage): Promise<void> {
    if (this.streaming) return;
    const before = this.current.messages.length;
    this.current.messages.push(prompt, answer);
    if (!(await this.saveMessages([prompt, answer]))) {
      this.current.messages.splice(before);
      return;
    }
    this.prompt.value = "";
    this.renderMessages();
    this.setStatus("Continuing with the answer you picked.");
  }

  // ---- message actions -------------------------------------------------------------------------------------
  /** Keep exactly `messages` as the chat (the branch the user chose) and save them with one versioned PUT. */
  private async replaceMessages(messages: StoredMessage[]): Promise<boolean> {
    const before = this.current.messages;
    this.current.messages = messages;
    this.renderMessages();
    const id = this.current.id;
    if (!id) return true;
    try {
      const updated = await this.sessions.update(id, this.current.version, { messages });
      if (this.current.id === id) this.current.version = updated.version;
      this.upsertSummary(updated);
      return true;
    } catch (error) {
      this.current.messages = before;
      this.renderMessages();
      this.reportError("The chat could not be saved", error);
      return false;
    }
  }

  /** Answer the last prompt again: the last answer is replaced. */
  private async regenerate(): Promise<void> {
    const messages = this.current.messages;
    const last = messages.length - 1;
    if (this.streaming || last < 1 || messages[last].role !== "assistant" || messages[last - 1].role !== "user") return;
    const model = this.chatModel();
    if (!model) return;
    this.clearAlert();
    const kept = messages.slice(0, last);
    this.setStatus("Sending…");
    if (await this.replaceMessages(kept)) await this.answer(model, kept.slice(0, -1), kept[kept.length - 1]);
  }

  /** Edit the prompt at `index` in place; sending it drops everything after it and asks again. */
  private startEdit(item: HTMLLIElement, index: number): void {
    const message = this.current.messages[index];
    const inputId = `edit-${index}`;
    const input = el("textarea", { id: inputId, rows: "3" });
    input.value = typedText(message);
    const form = el("form", { className: "edit-form" },
      el("label", { for: inputId }, "Edited prompt"),
      input,
      el("div", { className: "edit-actions" },
        el("button", { type: "submit", className: "small primary" }, "Ask again with the edit"),
        el("button", { type: "button", className: "small", "data-cancel": true }, "Cancel"),
      ),
    );
    const cancel = () => {
      this.renderMessages();
      this.prompt.focus();
    };
    form.querySelector("[data-cancel]")?.addEventListener("click", cancel);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        cancel();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.resend(index, input.value.trim());
    });
    item.querySelector(".content")?.replaceWith(form);
    item.querySelector(".message-actions")?.remove();
    input.focus();
  }

  private async resend(index: number, text: string): Promise<void> {
    if (!text || this.streaming) return;
    const model = this.chatModel();
    if (!model) return;
    this.clearAlert();
    this.setStatus("Sending…");
    const before = this.current.messages.slice(0, index);
    const original = this.current.messages[index];
    const documents = original.content.slice(typedText(original).length); // the attached text stays with it
    const edited: StoredMessage = {
      ...original,
      content: text + documents,
      createdAt: new Date().toISOString(),
      metadata: { ...(original.metadata ?? {}), edited: true, ...(documents ? { typed: text } : {}) },
    };
    if (await this.replaceMessages([...before, edited])) await this.answer(model, before, edited);
  }

  /** Delete the prompt at `index` and the answer after it. */
  private async deletePair(index: number): Promise<void> {
    if (this.streaming) return;
    const messages = this.current.messages;
    const end = messages[index + 1]?.role === "assistant" ? index + 2 : index + 1;
    if (await this.replaceMessages([...messages.slice(0, index), ...messages.slice(end)])) {
      this.setStatus("Deleted the message and its answer.");
      this.prompt.focus();
    }
  }

  private saveUserMessage(message: StoredMessage): Promise<boolean> {
    return this.saveMessages([message]);
  }

  /** Save new messages: the first ones create the chat. */
  private async saveMessages(messages: StoredMessage[]): Promise<boolean> {
    if (!this.current.id) {
      const id = newSessionId();
      try {
        // named by what the user typed, not by the documents attached after it (the server names by content)
        const typed = messages[0] ? typedText(messages[0]) : "";
        const name = messages[0] && typed !== messages[0].content ? chatName(typed) : undefined;
        const session = await this.sessions.create(id, { name, messages, parameters: this.sessionParameters() });
        this.current = { id, name: session.name, version: session.version, messages: this.current.messages };
        this.setTitle(session.name);
        this.upsertSummary(session);
        return true;
      } catch (error) {
        this.reportError("Your message could not be saved", error);
        return false;
      }
    }
    return this.appendToSession(messages);
  }

  private async appendToSession(messages: StoredMessage[]): Promise<boolean> {
    const id = this.current.id;
    if (!id) return false;
    try {
      const summary = await this.sessions.append(id, messages);
      if (this.current.id === id) this.current.version = summary.version;
      this.upsertSummary(summary);
      return true;
    } catch (error) {
      const full = error instanceof ApiError && error.status === 413;
      this.reportError(full ? "This chat is full; start a new chat" : "The chat could not be saved", error);
      return false;
    }
  }

  /** System prompt, then as much recent history as fits the model's prompt budget, then the new message. */
  private chatRequest(
    model: ModelChoice,
    history: StoredMessage[],
    message: StoredMessage,
    p: Parameters = this.params,
  ): ChatRequest {
    let budget = model.promptChars - message.content.length - (p.systemPrompt?.length ?? 0);
    const kept: ChatMessage[] = [];
    for (let i = history.length - 1; i >= 0; i--) {
      const turn = history[i];
      if (turn.role === "system" || (turn.role === "assistant" && !turn.content)) continue;
      budget -= turn.content.length;
      if (budget < 0) break;
      kept.unshift({ role: turn.role, content: turn.content });
    }
    while (kept.length && kept[0].role !== "user") kept.shift(); // a conversation starts with the user
    const messages: ChatMessage[] = [
      ...(p.systemPrompt ? [{ role: "system" as const, content: p.systemPrompt }] : []),
      ...kept,
      { role: "user", content: message.content },
    ];
    const request: ChatRequest = { model: model.id, messages };
    if (p.temperature !== null && p.temperature !== undefined) request.temperature = p.temperature;
    if (p.topP !== null && p.topP !== undefined && p.topP < 1) request.top_p = p.topP;
    if (p.topK) request.top_k = p.topK;
    if (p.maxTokens) request.max_tokens = p.maxTokens;
    if (p.ragEnabled && p.repositoryId) request.lisa_rag = { repositoryId: p.repositoryId, k: RAG_CHUNKS };
    return request;
  }

  // ---- rendering -------------------------------------------------------------------------------------------
  private renderMessages(): void {
    byId("usage-total").textContent = sessionTotals(this.current.messages);
    byId("export").hidden = this.current.messages.length === 0;
    this.messagesEl.replaceChildren(...this.current.messages.map((m, i) => this.messageItem(m, i)));
    if (!this.current.messages.length) {
      this.messagesEl.append(el("li", { className: "empty-chat" }, "Ask anything to start a new chat."));
    }
  }

  private messageItem(message: StoredMessage, index: number): HTMLLIElement {
    this.messagesEl.querySelector(".empty-chat")?.remove();
    const who = message.role === "user" ? "You" : message.role === "assistant" ? "LISA" : "System";
    const body = el("div", { className: "content" });
    if (message.role === "assistant") {
      body.innerHTML = renderMarkdown(message.content);
      addCodeToolbars(body, (m) => this.setStatus(m));
    } else body.textContent = typedText(message);
    const item = el("li", { className: `message ${message.role}` }, el("p", { className: "author" }, who), body);
    const meta = message.metadata ?? {};
    const notes: string[] = [];
    if (typeof meta.model === "string") notes.push(meta.model);
    if (meta.stopped) notes.push("stopped");
    if (meta.finishReason === "length") notes.push("cut at the token limit");
    if (notes.length || typeof meta.error === "string") {
      item.append(el("p", { className: "meta" }, notes.join(" · ")));
    }
    if (typeof meta.error === "string") item.append(el("p", { className: "error" }, `Error: ${meta.error}`));
    const attached = Array.isArray(meta.attachments) ? (meta.attachments as AttachmentNote[]) : [];
    if (attached.length) {
      const names = attached.map((a) => `${a.fileName}${cutNote(a)}`).join("; ");
      item.append(el("p", { className: "attachments" }, `Attached: ${names}`));
    }
    const usage = message.role === "assistant" ? usageLine(meta) : "";
    if (usage) item.append(el("p", { className: "usage" }, usage));
    item.append(this.messageActions(message, index, item));
    const sources = Array.isArray(meta.sources) ? (meta.sources as Source[]) : [];
    if (sources.length) {
      item.append(
        el("details", { className: "sources" },
          el("summary", {}, `Sources (${sources.length})`),
          el("ul", {}, ...sources.map((s) => el("li", {}, s.detail ? `${s.title} (${s.detail})` : s.title))),
        ),
      );
    }
    return item;
  }

  /** Copy on every message; edit and delete on prompts; regenerate on the last answer. */
  private messageActions(message: StoredMessage, index: number, item: HTMLLIElement): HTMLElement {
    const whose = message.role === "user" ? "your prompt" : "the answer";
    const actions = el("div", { className: "message-actions" },
      copyButton(`Copy ${whose}`, () => message.content, (m) => this.setStatus(m)),
    );
    const action = (label: string, name: string, run: () => void) => {
      const button = el("button", { type: "button", className: "small", "aria-label": name }, label);
      button.addEventListener("click", run);
      actions.append(button);
    };
    const messages = this.current.messages;
    if (message.role === "user") {
      action("Edit", "Edit your prompt and ask again", () => this.startEdit(item, index));
      action("Delete", "Delete your prompt and its answer", () => void this.deletePair(index));
    } else if (message.role === "assistant" && index === messages.length - 1 && messages[index - 1]?.role === "user") {
      action("Regenerate", "Regenerate the answer", () => void this.regenerate());
    }
    return actions;
  }

  private streamingItem(): { item: HTMLLIElement; content: HTMLDivElement } {
    const content = el("div", { className: "content" });
    const item = el(
      "li",
      { className: "message assistant streaming", "aria-busy": "true" },
      el("p", { className: "author" }, "LISA"),
      content,
    );
    this.messagesEl.append(item);
    item.scrollIntoView({ block: "end" });
    return { item, content };
  }

  private exported(): ExportedChat {
    const { id, name, messages } = this.current;
    return { sessionId: id, name, parameters: this.sessionParameters(), messages };
  }

  private setBusy(busy: boolean): void {
    this.stopButton.hidden = !busy;
    this.sendButton.disabled = busy;
    if (busy) this.stopButton.focus({ preventScroll: true });
  }

  private setTitle(name: string): void {
    this.current.name = name;
    byId("chat-title").textContent = name;
    document.title = name === "New chat" ? "LISA" : `${name} · LISA`;
  }

  private setStatus(message: string): void {
    this.statusEl.textContent = message;
  }

  private showAlert(message: string): void {
    announce(this.alertEl, message);
  }

  private clearAlert(): void {
    announce(this.alertEl, "");
  }

  private reportError(what: string, error: unknown): void {
    if (error instanceof ApiError && error.isAuthFailure) return; // the login view says it
    this.showAlert(`${what}: ${messageOf(error)}`);
  }
}

/** What the user typed: a prompt with attached documents carries their text after it. */
function typedText(message: StoredMessage): string {
  const typed = message.metadata?.typed;
  return typeof typed === "string" && message.content.startsWith(typed) ? typed : message.content;
}

/** A chat's name from its first prompt, as the sessions API derives it: the start of the text, on one line. */
function chatName(text: string): string | undefined {
  const line = text.split(/\s+/).filter(Boolean).join(" ");
  if (!line) return undefined;
  return line.length <= CHAT_NAME_CHARS ? line : `${line.slice(0, CHAT_NAME_CHARS - 1)}…`;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
