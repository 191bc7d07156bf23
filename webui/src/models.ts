// Models (administrators): every registered model with its live state, polled while a workflow owns one; the
// step it is in and a failure's reason in words; create, start/stop, scale, schedule and delete. The API refuses
// non-admins anyway (403); the chat does not even show them the page. Loaded on demand, not with the chat.

import "./models.css";
import { ApiError } from "./api";
import { announce, el, viewHead } from "./dom";
import { createForm, scaleForm, scheduleForm } from "./models-form";
import { BUSY, CreateModelRequest, ModelRecord, ModelSchedule, ModelStatus, ModelsApi, Scaling } from "./models-wire";

export { ModelsApi } from "./models-wire";

const POLL_MS = 1000;

/** The lifecycle workflow's steps (stepfunctions/model_lifecycle.json) in words. */
const STEPS: Record<string, string> = {
  Queued: "waiting for its workflow to start",
  Validate: "checking the model's settings",
  StageWeights: "staging the weights",
  CheckStaging: "staging the weights",
  WaitForStaging: "staging the weights",
  CreateInfrastructure: "creating its service and load balancer rule",
  ApplyUpdate: "applying the change to its service",
  Drain: "draining its requests",
  WaitHealthy: "waiting until its engines answer health checks",
  CheckHealth: "waiting until its engines answer health checks",
  RemoveInfrastructure: "removing its infrastructure",
  Finish: "recording the outcome",
  RollBack: "rolling back what it created",
};

const STATE_WORDS: Record<ModelStatus, string> = {
  Creating: "Creating",
  InService: "In service",
  Starting: "Starting",
  Stopping: "Stopping",
  Stopped: "Stopped",
  Updating: "Updating",
  Deleting: "Deleting",
  Failed: "Failed",
};

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function when(iso: string | null | undefined, timeZone?: string): Node {
  if (!iso) return document.createTextNode("none");
  const date = new Date(iso);
  const text = timeZone ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short", timeZone }).format(date)
    : WHEN.format(date);
  return el("time", { datetime: date.toISOString() }, text);
}

export function stepWords(step: string | null): string {
  return step ? STEPS[step] ?? step : "";
}

/** The state cell: the state, the step while busy, and a failure's step and reason. */
function stateCell(model: ModelRecord): Node[] {
  const parts: Node[] = [el("span", { className: `models-state models-${model.status.toLowerCase()}` }, STATE_WORDS[model.status])];
  if (BUSY.has(model.status) && model.statusStep) {
    parts.push(el("p", { className: "hint models-step" }, `Step ${model.statusStep}: ${stepWords(model.statusStep)}…`));
  }
  if (model.status === "Failed") {
    const step = model.statusStep ? `Failed in step ${model.statusStep} (${stepWords(model.statusStep)}). ` : "Failed. ";
    parts.push(el("p", { className: "models-failure" }, step, el("span", { className: "models-reason" }, model.statusReason ?? "No reason was recorded.")));
  } else if (model.status === "Stopped" && model.statusReason) {
    parts.push(el("p", { className: "hint" }, model.statusReason));
  }
  if (model.history.length) {
    parts.push(el("details", { className: "models-history" }, el("summary", {}, "History"),
      el("ol", {}, ...[...model.history].reverse().map((event) => el("li", {}, when(event.at), ` ${STATE_WORDS[event.status] ?? event.status}`,
        event.step ? `, ${event.step}` : "", event.reason ? `: ${event.reason}` : "")))));
  }
  return parts;
}

function scalingWords(s: Scaling): string {
  const desired = s.desiredCapacity ?? Math.max(1, s.minCapacity);
  return `${desired} task${desired === 1 ? "" : "s"} (min ${s.minCapacity}, max ${s.maxCapacity})`;
}

/** Where it is served: its URL, or what LISA runs for it (instance type, scaling, schedule). */
function servingCell(model: ModelRecord): Node[] {
  if (!model.hosting) {
    const where = model.endpointUrl ? [el("code", {}, model.endpointUrl)] : [document.createTextNode("no endpoint yet")];
    return [...where, el("p", { className: "hint" }, model.source === "config" ? "From config.yaml" : "Registered by URL")];
  }
  const parts: Node[] = [el("p", {}, model.hosting.enabled ? "Runs " : "Stopped: would run ", scalingWords(model.hosting.scaling),
    model.instanceType ? ` on ${model.instanceType}` : "")];
  if (model.endpointUrl) parts.push(el("p", { className: "hint" }, el("code", {}, model.endpointUrl)));
  const schedule = model.schedule;
  if (schedule) {
    const status = model.scheduleStatus;
    const windows = schedule.daily ? `daily ${schedule.daily.start}–${schedule.daily.stop}`
      : (schedule.weekly ?? []).map((w) => `${w.days.join(",")} ${w.start}–${w.stop}`).join("; ");
    parts.push(el("p", { className: "models-schedule" }, `Schedule (${schedule.timezone}): ${windows}.`,
      ...(status ? [" Next start ", when(status.nextStart, schedule.timezone), ", next stop ", when(status.nextStop, schedule.timezone), "."] : [])));
  }
  return parts;
}

export interface ModelsOptions {
  status(message: string): void;
  closed(): void;
}

export class ModelsView {
  private readonly root: HTMLElement;
  private readonly errorEl = el("p", { className: "error", role: "alert", hidden: true });
  private readonly live = el("p", { className: "visually-hidden", role: "status", "aria-live": "polite" });
  private readonly list = el("div", { className: "models-list" });
  private readonly editor = el("div", { className: "models-editor" });
  private readonly addButton = el("button", { type: "button", className: "primary" }, "Add a model");
  private models: ModelRecord[] = [];
  private timer: number | undefined;
  private closed = false;
  private loading: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: ModelsApi,
    private readonly options: ModelsOptions,
  ) {
    this.addButton.addEventListener("click", () => this.edit(createForm((body) => this.create(body), () => this.closeEditor())));
    this.root = el("section", { id: "models-view", className: "page-view", "aria-labelledby": "models-title" });
    this.root.append(
      viewHead(this.root, "models-title", "Models", "Close models", () => this.close()),
      el("p", { className: "hint" }, "Models LISA hosts (created here: it stages the weights and runs the engines) and "
        + "endpoints registered by URL. Models from config.yaml are managed there."),
      this.addButton, this.editor, this.errorEl, this.live, this.list,
    );
  }

  get element(): HTMLElement {
    return this.root;
  }

  async open(): Promise<void> {
    this.addButton.focus();
    await this.load();
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.root.remove();
    this.options.closed();
  }

  /** Read the list (after any read under way: the last answer shown is the newest); while any model is busy, read
   * it again in a second. */
  load(): Promise<void> {
    this.loading = this.loading.then(() => this.fetchList());
    return this.loading;
  }

  private async fetchList(): Promise<void> {
    window.clearTimeout(this.timer);
    let models: ModelRecord[];
    try {
      models = await this.api.list();
    } catch (error) {
      if (!(error instanceof ApiError && error.isAuthFailure)) this.fail("The models could not be loaded", error);
      return;
    }
    if (this.closed) return;
    this.announceChanges(models);
    this.models = models;
    this.render();
    if (models.some((m) => BUSY.has(m.status))) this.timer = window.setTimeout(() => void this.load(), POLL_MS);
  }

  private announceChanges(models: ModelRecord[]): void {
    const before = new Map(this.models.map((m) => [m.modelId, m.status]));
    if (!before.size) return;
    const changed = models.filter((m) => before.has(m.modelId) && before.get(m.modelId) !== m.status)
      .map((m) => `${m.modelName} is ${STATE_WORDS[m.status].toLowerCase()}.`);
    const gone = [...before.keys()].filter((id) => !models.some((m) => m.modelId === id)).map((id) => `${id} is deleted.`);
    if (changed.length || gone.length) this.live.textContent = [...changed, ...gone].join(" ");
  }

  private fail(what: string, error: unknown): void {
    if (error instanceof ApiError && error.isAuthFailure) return; // the login view says it
    announce(this.errorEl, `${what}: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** The table, rebuilt; focus stays on the same action of the same model if it was in the table. */
  private render(): void {
    const focused = document.activeElement instanceof HTMLElement ? document.activeElement.dataset.focusKey : undefined;
    if (!this.models.length) {
      this.list.replaceChildren(el("p", { className: "hint" }, "No models are registered."));
      return;
    }
    const rows = this.models.map((m) => el("tr", { "data-model-id": m.modelId },
      el("th", { scope: "row" }, el("span", { className: "models-name" }, m.modelName),
        el("p", { className: "hint" }, `${m.hfModelId} · ${m.inferenceContainer} · ${m.modelType}`)),
      el("td", { className: "models-state-cell" }, ...stateCell(m)),
      el("td", {}, ...servingCell(m)),
      el("td", { className: "models-actions" }, ...this.actions(m))));
    this.list.replaceChildren(el("table", { className: "data-table models-table" },
      el("caption", {}, `${this.models.length} registered model${this.models.length === 1 ? "" : "s"}`),
      el("thead", {}, el("tr", {}, ...["Model", "State", "Serving", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
    if (focused) this.list.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
  }

  private actions(m: ModelRecord): HTMLElement[] {
    if (m.source === "config") return [el("span", { className: "hint" }, "Change it in config.yaml")];
    const busy = BUSY.has(m.status);
    const button = (label: string, key: string, run: () => void, danger = false) => {
      const b = el("button", { type: "button", className: danger ? "small danger-link" : "small", disabled: busy,
        "aria-label": `${label} ${m.modelName}`, "data-focus-key": `${m.modelId}:${key}` }, label);
      b.addEventListener("click", run);
      return b;
    };
    const running = m.hosting ? m.hosting.enabled && m.status !== "Stopped" : m.status !== "Stopped";
    const buttons = [
      // one focus key for both: focus stays on the toggle when Stop becomes Start
      running ? button("Stop", "power", () => void this.change(m, { enabled: false }, `Stopping ${m.modelName}.`))
        : button("Start", "power", () => void this.change(m, { enabled: true }, `Starting ${m.modelName}.`)),
    ];
    if (m.hosting) {
      buttons.push(button("Scale", "scale", () => this.edit(scaleForm(m,
        (scaling) => this.change(m, { scaling }, `Scaling ${m.modelName}.`, true), () => this.closeEditor()))));
      buttons.push(button("Schedule", "schedule", () => this.edit(scheduleForm(m,
        (schedule) => this.change(m, { schedule }, `Saved the schedule of ${m.modelName}.`, true),
        m.schedule ? () => this.change(m, { schedule: null }, `Removed the schedule of ${m.modelName}.`, true) : null,
        () => this.closeEditor()))));
    }
    buttons.push(button("Delete", "delete", () => void this.remove(m), true));
    return buttons;
  }

  private edit(form: HTMLFormElement): void {
    this.editor.replaceChildren(form);
    this.addButton.hidden = true;
  }

  private closeEditor(): void {
    this.editor.replaceChildren();
    this.addButton.hidden = false;
    this.addButton.focus();
  }

  private async create(body: CreateModelRequest): Promise<void> {
    const record = await this.api.create(body); // a refusal is shown in the form
    this.closeEditor();
    this.options.status(`${record.modelName}: ${STATE_WORDS[record.status].toLowerCase()}.`);
    await this.load();
  }

  /** PUT a change based on the version shown; a form's change throws to its form, a button's is shown here. */
  private async change(m: ModelRecord, fields: { enabled?: boolean; scaling?: Scaling; schedule?: ModelSchedule | null },
    said: string, fromForm = false): Promise<void> {
    try {
      await this.api.update(m.modelId, { version: m.version, ...fields });
    } catch (error) {
      if (fromForm) throw error;
      this.fail(`${m.modelName} could not be changed`, error);
      await this.load();
      return;
    }
    announce(this.errorEl, "");
    if (fromForm) this.closeEditor();
    this.options.status(said);
    await this.load();
  }

  private async remove(m: ModelRecord): Promise<void> {
    const what = m.hosting ? " LISA drains it and removes its service." : "";
    if (!window.confirm(`Delete the model “${m.modelName}”?${what} Requests to it will be refused.`)) return;
    try {
      await this.api.delete(m.modelId, m.version);
    } catch (error) {
      this.fail(`${m.modelName} could not be deleted`, error);
      return;
    }
    announce(this.errorEl, "");
    this.options.status(`Deleting ${m.modelName}.`);
    await this.load();
  }
}
