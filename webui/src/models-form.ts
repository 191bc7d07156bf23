// The Models page's forms: create a model (hosted by LISA, or an existing endpoint by URL), scale a hosted one,
// and set or clear its schedule. Each checks the API's rules first (models-wire.ts) and marks the fields it names;
// what the server still refuses comes back through `submit` and is shown in the server's words.

import { ApiError } from "./api";
import { announce, el } from "./dom";
import {
  CreateModelRequest,
  ENGINES,
  Engine,
  ModelRecord,
  ModelSchedule,
  Problem,
  Scaling,
  WEEKDAYS,
  Weekday,
  WeeklyWindow,
  checkCreate,
  checkSchedule,
  checkScaling,
  parseEnvironment,
} from "./models-wire";

/** What a form hands its page: the request to send (a rejection's message is shown in the form). */
export type Submit<T> = (body: T) => Promise<void>;

const DEFAULT_IMAGES: Record<Engine, string> = {
  vllm: "vllm/vllm-openai:v0.11.0",
  tgi: "ghcr.io/huggingface/text-generation-inference:3.3.4",
  tei: "ghcr.io/huggingface/text-embeddings-inference:cpu-1.8",
  instructor: "lisa/instructor:local",
};

let uid = 0;

/** A labelled control with an optional hint; `field` is the wire path problems name. */
function field(label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string): HTMLElement {
  control.id ||= `models-field-${++uid}`;
  const parts: Node[] = [el("label", { for: control.id }, label), control];
  if (hint) {
    const hintEl = el("p", { id: `${control.id}-hint`, className: "hint" }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  return el("div", { className: "models-field" }, ...parts);
}

function input(attributes: Record<string, string | boolean>, value = ""): HTMLInputElement {
  const control = el("input", { type: "text", spellcheck: "false", autocomplete: "off", ...attributes });
  control.value = value;
  return control;
}

function numberInput(field: string, min: number, value: number | null): HTMLInputElement {
  return input({ type: "number", min: String(min), max: "100", step: "1", inputmode: "numeric", "data-field": field },
    value === null ? "" : String(value));
}

/** Mark the controls whose `data-field` a problem names, say every problem, focus the first bad control. */
function show(form: HTMLElement, error: HTMLElement, problems: Problem[]): boolean {
  const named = new Set(problems.map((p) => p.field));
  let first: HTMLElement | null = null;
  for (const control of form.querySelectorAll<HTMLElement>("[data-field]")) {
    const bad = [...named].some((f) => f === control.dataset.field || f.startsWith(`${control.dataset.field}.`));
    control.toggleAttribute("aria-invalid", bad);
    if (bad) first ??= control;
  }
  announce(error, problems.map((p) => `${p.field}: ${p.message}.`).join(" "));
  first?.focus();
  return problems.length === 0;
}

function refusal(error: unknown): string {
  if (error instanceof ApiError) return `LISA refused: ${error.message}`;
  return `The request failed: ${error instanceof Error ? error.message : String(error)}`;
}

/** A form with a title, its fields, an alert and submit/cancel; `submit` runs only when `check` finds nothing. */
function formShell(title: string, submitLabel: string, fields: Node[], check: () => Problem[], submit: () => Promise<void>,
  cancel: () => void): HTMLFormElement {
  const titleId = `models-form-title-${++uid}`;
  const error = el("p", { className: "error", role: "alert", hidden: true });
  const cancelButton = el("button", { type: "button", className: "small" }, "Cancel");
  const submitButton = el("button", { type: "submit", className: "primary" }, submitLabel);
  const form = el("form", { className: "template-form models-form", novalidate: true, "aria-labelledby": titleId },
    el("h3", { id: titleId }, title), ...fields, error, el("div", { className: "compare-actions" }, submitButton, cancelButton));
  cancelButton.addEventListener("click", cancel);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation(); // close the form, not the page
      cancel();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!show(form, error, check())) return;
    submitButton.disabled = true;
    submit().catch((failure: unknown) => {
      if (!(failure instanceof ApiError && failure.isAuthFailure)) announce(error, refusal(failure));
    }).finally(() => (submitButton.disabled = false));
  });
  return form;
}

/** The create form: a hosted model (engine, instance type, scaling, container) or an endpoint by URL. */
export function createForm(submit: Submit<CreateModelRequest>, cancel: () => void): HTMLFormElement {
  const kindName = `models-kind-${++uid}`;
  const hostedRadio = el("input", { type: "radio", name: kindName, value: "hosted", checked: true });
  const endpointRadio = el("input", { type: "radio", name: kindName, value: "endpoint" });
  const name = input({ required: true, "data-field": "modelName" });
  const hfId = input({ required: true, "data-field": "hfModelId" });
  const engine = el("select", { "data-field": "inferenceContainer" },
    ...ENGINES.map(([value, label]) => el("option", { value }, label)));
  const url = input({ type: "url", "data-field": "endpointUrl", placeholder: "http://10.0.0.5:8000" });
  const instance = input({ "data-field": "instanceType", placeholder: "g6.xlarge" });
  const min = numberInput("hosting.scaling.minCapacity", 0, 1);
  const max = numberInput("hosting.scaling.maxCapacity", 1, 1);
  const desired = numberInput("hosting.scaling.desiredCapacity", 0, null);
  const startNow = el("input", { type: "checkbox", checked: true });
  const image = input({ "data-field": "containerConfig.image" }, DEFAULT_IMAGES.vllm);
  const environment = el("textarea", { rows: "3", spellcheck: "false", "data-field": "containerConfig.environment",
    placeholder: "MAX_INPUT_LENGTH=1536\nMAX_TOTAL_TOKENS=2048" });
  const memory = input({ type: "number", min: "1", step: "1", inputmode: "numeric", "data-field": "containerConfig.sharedMemorySize" },
    "2048");
  let imageTouched = false;
  image.addEventListener("input", () => (imageTouched = true));
  engine.addEventListener("change", () => {
    if (!imageTouched) image.value = DEFAULT_IMAGES[engine.value as Engine];
  });

  const endpointBlock = el("div", { className: "models-kind-fields", hidden: true },
    field("Endpoint URL", url, "A server running elsewhere (OpenAI-compatible, TGI or TEI): in service at once."));
  const hostedBlock = el("div", { className: "models-kind-fields" },
    field("Instance type (optional)", instance, "The GPU instance type; empty: the deployment's default."),
    el("fieldset", { className: "models-scaling" }, el("legend", {}, "Scaling (tasks)"),
      field("Minimum", min), field("Maximum", max), field("Desired (optional)", desired)),
    el("label", { className: "check" }, startNow, " Start it once created"),
    field("Container image", image),
    field("Container environment (optional)", environment, "KEY=VALUE lines, e.g. MAX_TOTAL_TOKENS=2048 or VLLM_* settings."),
    field("Shared memory (MiB)", memory),
  );
  const switchKind = () => {
    endpointBlock.hidden = !endpointRadio.checked;
    hostedBlock.hidden = endpointRadio.checked;
  };
  hostedRadio.addEventListener("change", switchKind);
  endpointRadio.addEventListener("change", switchKind);

  let envProblems: Problem[] = [];
  const body = (): CreateModelRequest => {
    const request: CreateModelRequest = {
      modelName: name.value.trim(),
      hfModelId: hfId.value.trim(),
      inferenceContainer: engine.value as Engine,
    };
    if (endpointRadio.checked) return { ...request, endpointUrl: url.value.trim() };
    const parsed = parseEnvironment(environment.value);
    envProblems = parsed.problems;
    const number = (control: HTMLInputElement) => (control.value.trim() === "" ? null : Number(control.value));
    const scaling: Scaling = { minCapacity: number(min) ?? 1, maxCapacity: number(max) ?? 1, desiredCapacity: number(desired) };
    return {
      ...request,
      ...(instance.value.trim() ? { instanceType: instance.value.trim() } : {}),
      hosting: { enabled: startNow.checked, scaling },
      containerConfig: { image: image.value.trim(), environment: parsed.environment, sharedMemorySize: number(memory) ?? 2048 },
    };
  };
  const form = formShell("New model", "Create model", [
    el("fieldset", { className: "models-kind" }, el("legend", {}, "Kind"),
      el("label", { className: "check" }, hostedRadio, " Hosted by LISA (it runs the engine)"),
      el("label", { className: "check" }, endpointRadio, " An existing endpoint (by URL)")),
    field("Name", name, "1-63 letters, digits, '.', '_' or '-'; how clients pick the model."),
    field("Hugging Face model id", hfId, "org/name: the weights (staged into the models bucket if they are not)."),
    field("Engine", engine),
    endpointBlock,
    hostedBlock,
  ], () => {
    const request = body();
    return [...envProblems, ...checkCreate(request)];
  }, () => submit(body()), cancel);
  queueMicrotask(() => name.focus());
  return form;
}

/** The scale form of a hosted model: minimum, maximum and desired task counts. */
export function scaleForm(model: ModelRecord, submit: Submit<Scaling>, cancel: () => void): HTMLFormElement {
  const current = model.hosting?.scaling ?? { minCapacity: 1, maxCapacity: 1, desiredCapacity: null };
  const min = numberInput("minCapacity", 0, current.minCapacity);
  const max = numberInput("maxCapacity", 1, current.maxCapacity);
  const desired = numberInput("desiredCapacity", 0, current.desiredCapacity);
  const scaling = (): Scaling => ({
    minCapacity: Number(min.value),
    maxCapacity: Number(max.value),
    desiredCapacity: desired.value.trim() === "" ? null : Number(desired.value),
  });
  const form = formShell(`Scale ${model.modelName}`, "Scale", [
    field("Minimum tasks", min, "0 lets the model stop."), field("Maximum tasks", max), field("Desired tasks (optional)", desired),
  ], () => checkScaling(scaling()), () => submit(scaling()), cancel);
  queueMicrotask(() => min.focus());
  return form;
}

/** One weekly window's controls: its days, start and stop. */
function windowFields(index: number, window: WeeklyWindow, remove: () => void): HTMLElement {
  const days = WEEKDAYS.map((day) => {
    const box = el("input", { type: "checkbox", value: day, checked: window.days.includes(day) });
    return el("label", { className: "check" }, box, ` ${day}`);
  });
  const start = input({ type: "time", "data-field": `schedule.weekly.${index}.start`, required: true }, window.start);
  const stop = input({ type: "time", "data-field": `schedule.weekly.${index}.stop`, required: true }, window.stop);
  const removeButton = el("button", { type: "button", className: "small danger-link" }, `Remove window ${index + 1}`);
  removeButton.addEventListener("click", remove);
  return el("fieldset", { className: "models-window", "data-window": String(index), "data-field": `schedule.weekly.${index}` },
    el("legend", {}, `Window ${index + 1}`),
    el("div", { className: "models-days", role: "group", "aria-label": `Days of window ${index + 1}` }, ...days),
    field("Start", start), field("Stop", stop), removeButton);
}

function readWindow(fieldset: HTMLElement): WeeklyWindow {
  const checked = [...fieldset.querySelectorAll<HTMLInputElement>("input[type=checkbox]:checked")];
  const [start, stop] = [...fieldset.querySelectorAll<HTMLInputElement>("input[type=time]")];
  return { days: checked.map((box) => box.value as Weekday), start: start.value, stop: stop.value };
}

/** The schedule form: a daily window or weekly windows in an IANA time zone; `clear` removes the schedule. */
export function scheduleForm(model: ModelRecord, submit: Submit<ModelSchedule>, clear: (() => Promise<void>) | null,
  cancel: () => void): HTMLFormElement {
  const existing = model.schedule ?? null;
  const zone = input({ "data-field": "schedule.timezone", list: "models-zones", required: true },
    existing?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC");
  const zones = el("datalist", { id: "models-zones" },
    ...(typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : ["UTC"]).map((z) => el("option", { value: z })));
  const kindName = `models-schedule-kind-${++uid}`;
  const dailyRadio = el("input", { type: "radio", name: kindName, value: "daily", checked: !existing?.weekly });
  const weeklyRadio = el("input", { type: "radio", name: kindName, value: "weekly", checked: Boolean(existing?.weekly) });
  const dailyStart = input({ type: "time", "data-field": "schedule.daily.start" }, existing?.daily?.start ?? "08:00");
  const dailyStop = input({ type: "time", "data-field": "schedule.daily.stop" }, existing?.daily?.stop ?? "20:00");
  const dailyBlock = el("div", { className: "models-kind-fields" }, field("Start", dailyStart), field("Stop", dailyStop),
    el("p", { className: "hint" }, "A stop not after the start is on the next day (22:00 to 02:00 runs overnight)."));
  const windows = el("div", { className: "models-windows" });
  const addButton = el("button", { type: "button", className: "small" }, "Add a window");
  const weeklyBlock = el("div", { className: "models-kind-fields" }, windows, addButton);
  let current: WeeklyWindow[] = existing?.weekly ?? [{ days: ["MON", "TUE", "WED", "THU", "FRI"], start: "08:00", stop: "20:00" }];
  const renderWindows = () => {
    windows.replaceChildren(...current.map((w, i) => windowFields(i, w, () => {
      current = readAll().filter((_, j) => j !== i);
      renderWindows();
      addButton.focus();
    })));
  };
  const readAll = () => [...windows.querySelectorAll<HTMLElement>("fieldset[data-window]")].map(readWindow);
  addButton.addEventListener("click", () => {
    current = [...readAll(), { days: ["SAT"], start: "10:00", stop: "16:00" }];
    renderWindows();
    windows.querySelector<HTMLElement>("fieldset[data-window]:last-child input")?.focus();
  });
  const switchKind = () => {
    dailyBlock.hidden = !dailyRadio.checked;
    weeklyBlock.hidden = dailyRadio.checked;
  };
  dailyRadio.addEventListener("change", switchKind);
  weeklyRadio.addEventListener("change", switchKind);
  renderWindows();
  switchKind();
  const schedule = (): ModelSchedule => dailyRadio.checked
    ? { timezone: zone.value.trim(), daily: { start: dailyStart.value, stop: dailyStop.value } }
    : { timezone: zone.value.trim(), weekly: readAll() };
  const fields: Node[] = [
    field("Time zone (IANA)", zone, "e.g. Europe/Berlin or America/New_York; times below are local to it."), zones,
    el("fieldset", { className: "models-kind" }, el("legend", {}, "Runs"),
      el("label", { className: "check" }, dailyRadio, " Every day in one window"),
      el("label", { className: "check" }, weeklyRadio, " In weekly windows")),
    dailyBlock, weeklyBlock,
  ];
  const form = formShell(`Schedule ${model.modelName}`, "Save schedule", fields, () => checkSchedule(schedule()),
    () => submit(schedule()), cancel);
  if (clear) {
    const clearButton = el("button", { type: "button", className: "small danger-link" }, "Remove the schedule");
    clearButton.addEventListener("click", () => {
      clearButton.disabled = true;
      clear().catch((failure: unknown) => {
        const alert = form.querySelector<HTMLElement>("[role=alert]");
        if (alert) announce(alert, refusal(failure));
      }).finally(() => (clearButton.disabled = false));
    });
    form.querySelector(".compare-actions")?.append(clearButton);
  }
  queueMicrotask(() => zone.focus());
  return form;
}
