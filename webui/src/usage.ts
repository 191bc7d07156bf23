// Usage: the caller's requests and tokens per day and model (GET /usage), as two charts (uPlot, drawn on canvas)
// and a table with the same figures (the charts' accessible alternative), with totals. Administrators may ask for
// any principal (an owner id such as token:alice) or "*" for everyone. Loaded on demand: uPlot is not in the
// chat page's first download.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { ApiClient, ApiError } from "./api";
import { announce, el, viewHead } from "./dom";

/** One principal's use of one model on one day (UTC), as GET /usage reports it. */
export interface UsageDay {
  date: string;
  principal: string;
  model: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
}

export interface UsageTotals {
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
}

export interface UsageReport {
  principal: string;
  from: string;
  to: string;
  days: UsageDay[];
  totals: UsageTotals;
}

export interface UsageQuery {
  from: string;
  to: string;
  model?: string;
  principal?: string;
}

export class UsageApi {
  constructor(private readonly api: ApiClient) {}

  get(query: UsageQuery): Promise<UsageReport> {
    const params = new URLSearchParams({ from: query.from, to: query.to });
    if (query.model) params.set("model", query.model);
    if (query.principal) params.set("principal", query.principal);
    return this.api.get<UsageReport>(`/usage?${params}`);
  }
}

const DAY_MS = 24 * 3600 * 1000;
const DEFAULT_DAYS = 30;
const CHART_HEIGHT = 220;
// Tick steps of the y axes: requests and tokens are whole numbers (no 0.25-request ticks).
const WHOLE_STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));
// Distinguishable on the light and the dark background alike (Okabe-Ito, colour-blind safe).
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#b8a21a", "#999999"];

/** The ISO date (UTC) `days` before `date`. */
export function isoDate(date: Date, days = 0): string {
  return new Date(date.getTime() - days * DAY_MS).toISOString().slice(0, 10);
}

/** The default range: the last 30 days, today (UTC) included. */
export function defaultRange(now = new Date()): { from: string; to: string } {
  return { from: isoDate(now, DEFAULT_DAYS - 1), to: isoDate(now) };
}

/** Every date from `from` to `to` (inclusive), so days without use are zeros on the chart, not gaps. */
function datesOf(from: string, to: string): string[] {
  const dates: string[] = [];
  for (let t = Date.parse(from); t <= Date.parse(to); t += DAY_MS) dates.push(new Date(t).toISOString().slice(0, 10));
  return dates;
}

/** Per model, one value per date: the sum over principals of `value` of that day. */
function perModel(report: UsageReport, dates: string[], value: (d: UsageDay) => number): Map<string, number[]> {
  const index = new Map(dates.map((d, i) => [d, i]));
  const series = new Map<string, number[]>();
  for (const day of report.days) {
    const i = index.get(day.date);
    if (i === undefined) continue;
    if (!series.has(day.model)) series.set(day.model, dates.map(() => 0));
    series.get(day.model)![i] += value(day);
  }
  return new Map([...series].sort(([a], [b]) => a.localeCompare(b)));
}

const count = (n: number) => n.toLocaleString();
const counted = (n: number, one: string, many: string) => `${count(n)} ${n === 1 ? one : many}`;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

interface Chart {
  plot: uPlot;
  box: HTMLElement;
}

export interface UsageOptions {
  /** Models to filter on (the chat's model list). */
  models: string[];
  /** Whether the caller may ask for other principals (an administrator). */
  isAdmin: () => Promise<boolean>;
  closed(): void;
}

export class UsageView {
  private readonly root: HTMLElement;
  private readonly errorEl = el("p", { className: "error", role: "alert", hidden: true });
  private readonly result = el("div", { className: "usage-result" });
  private readonly from = el("input", { id: "usage-from", type: "date", required: true });
  private readonly to = el("input", { id: "usage-to", type: "date", required: true });
  private readonly model = el("select", { id: "usage-model" });
  private readonly principal = el("input", { id: "usage-principal", type: "text", spellcheck: "false",
    autocomplete: "off", "aria-describedby": "usage-principal-hint" });
  private readonly principalBlock: HTMLElement;
  private charts: Chart[] = [];
  private asked = 0; // the latest query: an earlier one's late answer is not shown over it
  private readonly resize = new ResizeObserver(() => this.fitCharts());

  constructor(
    private readonly api: UsageApi,
    private readonly options: UsageOptions,
  ) {
    const range = defaultRange();
    this.from.value = range.from;
    this.to.value = range.to;
    this.model.append(el("option", { value: "" }, "All models"), ...options.models.map((m) => el("option", { value: m }, m)));
    this.principalBlock = el("div", { className: "usage-field", hidden: true },
      el("label", { for: "usage-principal" }, "Principal"),
      this.principal,
      el("p", { id: "usage-principal-hint", className: "hint" }, "Empty: you. An owner id (token:alice) or * for everyone."),
    );
    const form = el("form", { className: "usage-form", novalidate: true, "aria-label": "Usage to show" },
      el("div", { className: "usage-field" }, el("label", { for: "usage-from" }, "From"), this.from),
      el("div", { className: "usage-field" }, el("label", { for: "usage-to" }, "To"), this.to),
      el("div", { className: "usage-field" }, el("label", { for: "usage-model" }, "Model"), this.model),
      this.principalBlock,
      el("button", { type: "submit", className: "primary" }, "Show usage"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.load();
    });
    this.root = el("section", { id: "usage-view", className: "page-view", "aria-labelledby": "usage-title" });
    this.root.append(
      viewHead(this.root, "usage-title", "Usage", "Close usage", () => this.close()),
      form,
      this.errorEl,
      this.result,
    );
    this.resize.observe(this.result);
  }

  get element(): HTMLElement {
    return this.root;
  }

  close(): void {
    this.resize.disconnect();
    this.dropCharts();
    this.root.remove();
    this.options.closed();
  }

  /** Show the principal field to administrators, then the default range's usage. */
  async open(): Promise<void> {
    this.principalBlock.hidden = !(await this.options.isAdmin().catch(() => false));
    this.from.focus();
    await this.load();
  }

  async load(): Promise<void> {
    const query: UsageQuery = { from: this.from.value, to: this.to.value, model: this.model.value };
    if (!this.principalBlock.hidden && this.principal.value.trim()) query.principal = this.principal.value.trim();
    const problem = !query.from || !query.to ? "Enter both dates." : query.from > query.to ? "From must not be after To." : "";
    this.from.toggleAttribute("aria-invalid", !query.from || Boolean(problem && query.from > query.to));
    this.to.toggleAttribute("aria-invalid", !query.to);
    if (problem) {
      announce(this.errorEl, problem);
      return;
    }
    const asked = ++this.asked;
    let report: UsageReport;
    try {
      report = await this.api.get(query);
    } catch (error) {
      if (asked !== this.asked || (error instanceof ApiError && error.isAuthFailure)) return; // the login view says it
      this.dropCharts();
      this.result.replaceChildren();
      announce(this.errorEl, `The usage could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (asked !== this.asked) return;
    announce(this.errorEl, "");
    this.render(report);
  }

  private render(report: UsageReport): void {
    this.dropCharts();
    const who = report.principal === "*" ? "everyone" : report.principal;
    const t = report.totals;
    const summary = el("p", { className: "usage-summary", role: "status" },
      `${who}, ${report.from} to ${report.to}: ${counted(t.requests, "request", "requests")} (${count(t.errors)} failed), `
      + `${counted(t.promptTokens + t.completionTokens, "token", "tokens")} (${count(t.promptTokens)} prompt, `
      + `${count(t.completionTokens)} completion).`);
    if (!report.days.length) {
      this.result.replaceChildren(summary, el("p", { className: "hint" }, "No use in this range."));
      return;
    }
    const dates = datesOf(report.from, report.to);
    const tokens = perModel(report, dates, (d) => d.promptTokens + d.completionTokens);
    const requests = perModel(report, dates, (d) => d.requests);
    const tokenChart = this.chart("usage-chart-tokens", "Tokens per day", dates, tokens);
    const requestChart = this.chart("usage-chart-requests", "Requests per day", dates, requests);
    this.result.replaceChildren(summary, tokenChart, requestChart, this.table(report));
    this.fitCharts();
  }

  /** A figure whose chart is one image to assistive technology; the table below carries its figures. */
  private chart(id: string, title: string, dates: string[], series: Map<string, number[]>): HTMLElement {
    const box = el("div", { className: "usage-chart", role: "img",
      "aria-label": `${title} per model, ${dates[0]} to ${dates[dates.length - 1]}; the table below lists the figures` });
    const text = cssVar("--text", "#1b1c1f");
    const grid = cssVar("--border", "#d7d9de");
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts: uPlot.Options = {
      width: 600,
      height: CHART_HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [{ ...axis }, { ...axis, size: 60, incrs: WHOLE_STEPS }],
      series: [
        { label: "Date", value: "{YYYY}-{MM}-{DD}" },
        ...[...series.keys()].map((model, i) => ({
          label: model,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          points: { show: true, size: 5 },
        })),
      ],
    };
    const data: uPlot.AlignedData = [dates.map((d) => Date.parse(d) / 1000), ...series.values()];
    const plot = new uPlot(opts, data, box);
    this.charts.push({ plot, box });
    return el("figure", { id, className: "usage-figure" }, el("figcaption", {}, title), box);
  }

  private fitCharts(): void {
    const width = Math.max(240, this.result.clientWidth);
    for (const { plot } of this.charts) if (plot.width !== width) plot.setSize({ width, height: CHART_HEIGHT });
  }

  private dropCharts(): void {
    for (const { plot } of this.charts) plot.destroy();
    this.charts = [];
  }

  /** Every row of the report, newest day first; a principal column when the report covers several. */
  private table(report: UsageReport): HTMLElement {
    const several = report.principal === "*";
    const rows = [...report.days].sort((a, b) => b.date.localeCompare(a.date) || a.model.localeCompare(b.model)
      || a.principal.localeCompare(b.principal));
    const headers = ["Date", ...(several ? ["Principal"] : []), "Model", "Requests", "Failed", "Prompt tokens",
      "Completion tokens"];
    const numeric = (n: number) => el("td", { className: "number" }, count(n));
    const t = report.totals;
    return el("table", { id: "usage-table", className: "data-table" },
      el("caption", {}, "Usage per day and model"),
      el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows.map((d) => el("tr", {},
        el("td", {}, d.date),
        ...(several ? [el("td", {}, d.principal)] : []),
        el("td", {}, d.model),
        numeric(d.requests), numeric(d.errors), numeric(d.promptTokens), numeric(d.completionTokens)))),
      el("tfoot", {}, el("tr", {},
        el("th", { scope: "row", colspan: String(several ? 3 : 2) }, "Total"),
        numeric(t.requests), numeric(t.errors), numeric(t.promptTokens), numeric(t.completionTokens))),
    );
  }
}
