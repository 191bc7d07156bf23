// The model registry's wire shapes (chalicelib/registry/models.py, chalicelib/contracts/schedules.py), its admin
// API (POST/PUT/DELETE /models) and the rules the API validates a model with, checked here before sending so the
// form names a bad field at once. The server stays the judge: whatever it still refuses is shown in its words.
// Each rule below names the Python it mirrors; tests/browser/test_models_page.py checks the two agree.

import { ApiClient } from "./api";

export type ModelStatus =
  | "Creating" | "InService" | "Starting" | "Stopping" | "Stopped" | "Updating" | "Deleting" | "Failed";
export type Engine = "vllm" | "tgi" | "tei" | "instructor";
export type Weekday = "MON" | "TUE" | "WED" | "THU" | "FRI" | "SAT" | "SUN";

/** While a workflow owns the model (BUSY_STATUSES): the page polls until none is left. */
export const BUSY: ReadonlySet<ModelStatus> = new Set(["Creating", "Starting", "Stopping", "Updating", "Deleting"]);
export const ENGINES: ReadonlyArray<[Engine, string]> = [
  ["vllm", "vLLM (OpenAI-compatible)"],
  ["tgi", "TGI"],
  ["tei", "TEI (embeddings)"],
  ["instructor", "Instructor (embeddings)"],
];
export const WEEKDAYS: readonly Weekday[] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

export interface Scaling {
  minCapacity: number;
  maxCapacity: number;
  desiredCapacity: number | null;
}

export interface Hosting {
  enabled: boolean;
  scaling: Scaling;
}

export interface ContainerConfig {
  image: string;
  environment: Record<string, string>;
  sharedMemorySize?: number;
}

export interface StatusEvent {
  at: string;
  status: ModelStatus;
  step: string | null;
  reason: string | null;
}

export interface DailyWindow {
  start: string;
  stop: string;
}

export interface WeeklyWindow extends DailyWindow {
  days: Weekday[];
}

export interface ModelSchedule {
  timezone: string;
  daily?: DailyWindow | null;
  weekly?: WeeklyWindow[] | null;
}

export interface ScheduleStatus {
  timezone: string;
  running: boolean;
  nextStart: string | null;
  nextStop: string | null;
}

/** A registry record (ModelRecord) as an administrator reads it. */
export interface ModelRecord {
  modelId: string;
  modelName: string;
  hfModelId: string;
  provider: string;
  modelType: "textgen" | "embedding";
  inferenceContainer: Engine;
  endpointUrl: string | null;
  status: ModelStatus;
  statusReason: string | null;
  statusStep: string | null;
  history: StatusEvent[];
  streaming: boolean;
  containerConfig: ContainerConfig | null;
  instanceType: string | null;
  hosting: Hosting | null;
  source: "config" | "api";
  updatedAt: string;
  version: number;
  /** With the schedules of issue 16 item 3: absent from an API without them. */
  schedule?: ModelSchedule | null;
  scheduleStatus?: ScheduleStatus | null;
}

/** POST /models (CreateModelRequest). */
export interface CreateModelRequest {
  modelName: string;
  hfModelId: string;
  inferenceContainer: Engine;
  endpointUrl?: string;
  containerConfig?: ContainerConfig;
  instanceType?: string;
  hosting?: Hosting;
}

/** PUT /models/{id} (UpdateModelRequest): `version` is the one the change is based on. */
export interface UpdateModelRequest {
  version: number;
  enabled?: boolean;
  scaling?: Scaling;
  schedule?: ModelSchedule | null;
}

/** 202 of a change a workflow carries out (ModelChangeStarted). */
interface ModelChangeStarted {
  model: ModelRecord;
  executionArn: string;
}

function recordOf(answer: ModelRecord | ModelChangeStarted | { deleted: string; model: ModelRecord }): ModelRecord {
  return "modelId" in answer ? answer : answer.model;
}

export class ModelsApi {
  constructor(private readonly api: ApiClient) {}

  async list(): Promise<ModelRecord[]> {
    return (await this.api.get<{ models: ModelRecord[] }>("/models")).models;
  }

  async create(body: CreateModelRequest): Promise<ModelRecord> {
    return recordOf(await this.api.request("POST", "/models", { body }));
  }

  async update(modelId: string, body: UpdateModelRequest): Promise<ModelRecord> {
    return recordOf(await this.api.request("PUT", `/models/${encodeURIComponent(modelId)}`, { body }));
  }

  /** Only while the model is at `version` (409 otherwise); a hosted one goes through the delete workflow. */
  async delete(modelId: string, version: number): Promise<ModelRecord> {
    return recordOf(await this.api.request("DELETE", `/models/${encodeURIComponent(modelId)}?version=${version}`));
  }
}

// ---- the API's rules --------------------------------------------------------------------------------------------
/** A problem with one field: `field` is the wire path the API would name. */
export interface Problem {
  field: string;
  message: string;
}

// chalicelib/config.py NAME_PATTERN and MODEL_ID_PATTERN (Python's \w is Unicode: letters, digits, marks, _)
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MODEL_ID = /^[A-Za-z0-9][\p{L}\p{N}\p{M}_.-]*\/[A-Za-z0-9][\p{L}\p{N}\p{M}_.-]*$/u;
const INSTANCE_TYPE = /^[a-z0-9][a-z0-9.-]*$/; // registry/models.py InstanceType
const TIME_OF_DAY = /^([01][0-9]|2[0-3]):[0-5][0-9]$/; // contracts/schedules.py _time_of_day
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_CAPACITY = 100;
const MAX_WINDOWS = 14;
const POSITIVE_LIMITS = ["MAX_CONCURRENT_REQUESTS", "MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS"];

export function checkName(value: string): string | null {
  return NAME.test(value) ? null : "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";
}

export function checkHfModelId(value: string): string | null {
  return value.length <= 200 && MODEL_ID.test(value) ? null : "must be 'org/name' (a Hugging Face model id)";
}

/** registry/models.py _endpoint: an http(s) URL with a host, no query or fragment. */
export function checkEndpoint(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an http(s) URL with a host";
  }
  if (!["http:", "https:"].includes(url.protocol) || !url.hostname || value.length > 2048) {
    return "must be an http(s) URL with a host";
  }
  return url.search || url.hash || value.includes("?") || value.includes("#") ? "must not have a query or fragment" : null;
}

/** registry/models.py Scaling: whole numbers, min ≤ desired ≤ max. */
export function checkScaling(s: Scaling): Problem[] {
  const problems: Problem[] = [];
  const whole = (n: number | null, lowest: number) => n === null || (Number.isInteger(n) && n >= lowest && n <= MAX_CAPACITY);
  if (!whole(s.minCapacity, 0)) problems.push({ field: "minCapacity", message: `must be a whole number from 0 to ${MAX_CAPACITY}` });
  if (!whole(s.maxCapacity, 1)) problems.push({ field: "maxCapacity", message: `must be a whole number from 1 to ${MAX_CAPACITY}` });
  if (!whole(s.desiredCapacity, 0)) {
    problems.push({ field: "desiredCapacity", message: `must be a whole number from 0 to ${MAX_CAPACITY}` });
  }
  if (problems.length) return problems;
  if (s.minCapacity > s.maxCapacity) problems.push({ field: "minCapacity", message: "must not exceed maxCapacity" });
  else if (s.desiredCapacity !== null && !(s.minCapacity <= s.desiredCapacity && s.desiredCapacity <= s.maxCapacity)) {
    problems.push({ field: "desiredCapacity", message: "must be within minCapacity..maxCapacity" });
  }
  return problems;
}

/** `KEY=VALUE` lines → the container's environment (blank lines skipped). */
export function parseEnvironment(text: string): { environment: Record<string, string>; problems: Problem[] } {
  const environment: Record<string, string> = {};
  const problems: Problem[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    const at = line.indexOf("=");
    const key = at > 0 ? line.slice(0, at).trim() : "";
    if (!ENV_KEY.test(key)) {
      problems.push({ field: "containerConfig.environment", message: `line ${index + 1} must be KEY=VALUE` });
      return;
    }
    environment[key] = line.slice(at + 1).trim();
  });
  return { environment, problems };
}

/** config.py ContainerConfig: an image; token limits positive integers, the input shorter than the total. */
export function checkContainer(config: ContainerConfig): Problem[] {
  const problems: Problem[] = [];
  if (!config.image.trim()) problems.push({ field: "containerConfig.image", message: "required for a hosted model" });
  const env = config.environment;
  for (const key of POSITIVE_LIMITS) {
    if (key in env && !(/^[0-9]+$/.test(env[key]) && Number(env[key]) > 0)) {
      problems.push({ field: `containerConfig.environment.${key}`, message: "must be a positive integer" });
    }
  }
  const limits = ["MAX_INPUT_LENGTH", "MAX_TOTAL_TOKENS"];
  if (!problems.length && limits.every((k) => k in env) && Number(env[limits[0]]) >= Number(env[limits[1]])) {
    problems.push({ field: "containerConfig.environment.MAX_INPUT_LENGTH", message: "must be less than MAX_TOTAL_TOKENS" });
  }
  const memory = config.sharedMemorySize;
  if (memory !== undefined && !(Number.isInteger(memory) && memory > 0)) {
    problems.push({ field: "containerConfig.sharedMemorySize", message: "must be a positive whole number (MiB)" });
  }
  return problems;
}

/** Every problem POST /models would refuse `body` for (CreateModelRequest's own checks). */
export function checkCreate(body: CreateModelRequest): Problem[] {
  const problems: Problem[] = [];
  const add = (field: string, message: string | null) => message && problems.push({ field, message });
  add("modelName", checkName(body.modelName));
  add("hfModelId", checkHfModelId(body.hfModelId));
  if (!ENGINES.some(([engine]) => engine === body.inferenceContainer)) add("inferenceContainer", "choose an engine");
  if (body.endpointUrl !== undefined) {
    add("endpointUrl", checkEndpoint(body.endpointUrl));
    return problems;
  }
  if (body.instanceType !== undefined && !(body.instanceType.length <= 64 && INSTANCE_TYPE.test(body.instanceType))) {
    add("instanceType", "must be lowercase letters, digits, '.' or '-' (e.g. g6.xlarge)");
  }
  if (body.hosting) problems.push(...checkScaling(body.hosting.scaling).map((p) => ({ ...p, field: `hosting.scaling.${p.field}` })));
  if (!body.containerConfig) add("containerConfig", "required for a hosted model (one without an endpointUrl)");
  else problems.push(...checkContainer(body.containerConfig));
  return problems;
}

// ---- schedules (contracts/schedules.py ModelSchedule) ----------------------------------------------------------
const DAY_MINUTES = 24 * 60;
const WEEK_MINUTES = 7 * DAY_MINUTES;

function minutesOf(time: string): number {
  const [hours, minutes] = time.split(":").map(Number);
  return hours * 60 + minutes;
}

/** Whether `name` is an IANA time zone this browser knows (the server checks with Python's zoneinfo). */
export function knownZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return name.length > 0 && name.length <= 64;
  } catch {
    return false;
  }
}

export function checkSchedule(schedule: ModelSchedule): Problem[] {
  const problems: Problem[] = [];
  if (!knownZone(schedule.timezone)) {
    problems.push({ field: "schedule.timezone", message: "unknown IANA time zone (e.g. 'Europe/Berlin', 'UTC')" });
  }
  const windows: WeeklyWindow[] = schedule.daily ? [{ ...schedule.daily, days: [...WEEKDAYS] }] : schedule.weekly ?? [];
  const where = (i: number) => (schedule.daily ? "schedule.daily" : `schedule.weekly.${i}`);
  if (!windows.length) problems.push({ field: "schedule.weekly", message: "add at least one window" });
  if (windows.length > MAX_WINDOWS) problems.push({ field: "schedule.weekly", message: `at most ${MAX_WINDOWS} windows` });
  windows.forEach((w, i) => {
    for (const key of ["start", "stop"] as const) {
      if (!TIME_OF_DAY.test(w[key])) problems.push({ field: `${where(i)}.${key}`, message: "must be a time of day HH:MM" });
    }
    if (w.start === w.stop) problems.push({ field: `${where(i)}.stop`, message: "must differ from start" });
    if (!w.days.length) problems.push({ field: `${where(i)}.days`, message: "choose at least one day" });
  });
  if (problems.length || schedule.daily) return problems;
  // _no_overlap: every (day, window) span in week order; the next one must start after this one stops
  const spans = windows.flatMap((w, index) => w.days.map((day) => ({
    start: WEEKDAYS.indexOf(day) * DAY_MINUTES + minutesOf(w.start),
    index,
    length: (minutesOf(w.stop) - minutesOf(w.start) + DAY_MINUTES) % DAY_MINUTES,
  }))).sort((a, b) => a.start - b.start || a.index - b.index);
  if (spans.length < 2) return problems;
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i];
    const next = spans[(i + 1) % spans.length];
    if ((((next.start - span.start) % WEEK_MINUTES) + WEEK_MINUTES) % WEEK_MINUTES <= span.length) {
      const [first, second] = [span.index, next.index].sort((a, b) => a - b);
      const day = WEEKDAYS[Math.floor(next.start / DAY_MINUTES)];
      problems.push({ field: `schedule.weekly.${second}`, message: `overlaps or touches weekly.${first} on ${day}` });
      break;
    }
  }
  return problems;
}
