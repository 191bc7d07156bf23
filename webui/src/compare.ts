// Compare: one prompt sent to 2-4 model-and-parameter choices at once, the answers streamed side by side; the
// user picks one to continue the chat with. Its controls exist only while it is open (their labels would
// otherwise shadow the chat's own "Model" or "Temperature" for assistive technology and tests alike).

import { TimedAnswer, assistantMessage, streamTimed, usageLine } from "./answers";
import { ApiClient, ApiError } from "./api";
import { addCodeToolbars } from "./code";
import { el, perFrame } from "./dom";
import type { ModelChoice, Parameters, StoredMessage } from "./lisa";
import { renderMarkdown } from "./markdown";
import type { ChatRequest } from "./stream";

export const MIN_CHOICES = 2;
export const MAX_CHOICES = 4;

export interface CompareHost {
  api: ApiClient;
  models(): ModelChoice[];
  /** The parameters of the chat (the starting point of each choice). */
  parameters(): Parameters;
  /** The request the chat would send for `prompt` with `parameters` and `model`. */
  request(model: ModelChoice, prompt: StoredMessage, parameters: Parameters): ChatRequest;
  /** Continue the chat with `prompt` and the picked `answer`. */
  choose(prompt: StoredMessage, answer: StoredMessage): Promise<void>;
  status(message: string): void;
  closed(): void;
}

interface Choice {
  fieldset: HTMLFieldSetElement;
  model: HTMLSelectElement;
  temperature: HTMLInputElement;
  maxTokens: HTMLInputElement;
}

export class ComparePanel {
  private readonly root: HTMLElement;
  private readonly choicesEl = el("div", { className: "compare-choices" });
  private readonly resultsEl = el("div", { className: "compare-results", "aria-live": "polite" });
  private readonly promptInput = el("textarea", { id: "compare-prompt", rows: "3", required: true });
  private readonly addButton = el("button", { type: "button", className: "small" }, "Add a choice");
  private readonly runButton = el("button", { type: "submit", className: "primary" }, "Send to all choices");
  private readonly errorEl = el("p", { className: "error", role: "alert", hidden: true });
  private choices: Choice[] = [];
  private running: AbortController | null = null;

  constructor(
    private readonly host: CompareHost,
    prompt: string,
  ) {
    this.promptInput.value = prompt;
    const close = el("button", { type: "button", className: "small" }, "Close compare");
    close.addEventListener("click", () => this.close());
    this.addButton.addEventListener("click", () => this.addChoice());
    const form = el("form", { className: "compare-form", novalidate: true },
      el("label", { for: "compare-prompt" }, "Prompt to compare"),
      this.promptInput,
      this.choicesEl,
      el("div", { className: "compare-actions" }, this.addButton, this.runButton),
      this.errorEl,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run();
    });
    this.root = el("section", { id: "compare-view", className: "compare", "aria-labelledby": "compare-title" },
      el("div", { className: "compare-head" }, el("h2", { id: "compare-title" }, "Compare answers"), close),
      form,
      this.resultsEl,
    );
    this.root.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close();
      }
    });
    // Two different models when there are two; else one model at a low and a high temperature.
    const models = host.models().filter((m) => m.available);
    const base = host.parameters();
    this.addChoice(models[0], { ...base, temperature: 0.2 });
    this.addChoice(models[1] ?? models[0], { ...base, temperature: models[1] ? base.temperature : 1.2 });
  }

  get element(): HTMLElement {
    return this.root;
  }

  focus(): void {
    this.promptInput.focus();
  }

  close(): void {
    this.running?.abort();
    this.root.remove();
    this.host.closed();
  }

  private addChoice(model?: ModelChoice, parameters: Parameters = this.host.parameters()): void {
    if (this.choices.length >= MAX_CHOICES) return;
    const n = this.choices.length + 1;
    const id = (what: string) => `compare-${n}-${what}`;
    const select = el("select", { id: id("model") });
    for (const m of this.host.models()) select.append(el("option", { value: m.id, disabled: !m.available }, m.label));
    select.value = (model ?? this.host.models().find((m) => m.available))?.id ?? "";
    const temperature = el("input", { id: id("temperature"), type: "number", min: "0", max: "2", step: "0.1" });
    temperature.value = String(parameters.temperature ?? 0.7);
    const maxTokens = el("input", { id: id("max-tokens"), type: "number", min: "1", max: "131072", step: "1" });
    maxTokens.value = String(parameters.maxTokens ?? 512);
    const remove = el("button", { type: "button", className: "small danger-link" }, `Remove choice ${n}`);
    const fieldset = el("fieldset", { className: "compare-choice" },
      el("legend", {}, `Choice ${n}`),
      el("label", { for: id("model") }, `Choice ${n} model`), select,
      el("label", { for: id("temperature") }, `Choice ${n} temperature`), temperature,
      el("label", { for: id("max-tokens") }, `Choice ${n} max tokens`), maxTokens,
      remove,
    );
    const choice: Choice = { fieldset, model: select, temperature, maxTokens };
    remove.addEventListener("click", () => this.removeChoice(choice));
    this.choices.push(choice);
    this.choicesEl.append(fieldset);
    this.updateButtons();
  }

  private removeChoice(choice: Choice): void {
    if (this.choices.length <= MIN_CHOICES) return;
    // the remaining choices keep their settings; numbering (labels and ids) follows their order again
    const kept = this.choices.filter((c) => c !== choice).map((c) => ({
      model: this.host.models().find((m) => m.id === c.model.value),
      parameters: { ...this.host.parameters(), temperature: Number(c.temperature.value), maxTokens: Number(c.maxTokens.value) },
    }));
    this.choices = [];
    this.choicesEl.replaceChildren();
    for (const k of kept) this.addChoice(k.model, k.parameters);
    this.addButton.focus();
  }

  private updateButtons(): void {
    this.addButton.disabled = this.choices.length >= MAX_CHOICES;
    for (const c of this.choices) {
      (c.fieldset.querySelector(".danger-link") as HTMLButtonElement).hidden = this.choices.length <= MIN_CHOICES;
    }
  }

  /** The settings of each choice, or the words saying what is wrong with them. */
  private settings(): Array<{ model: ModelChoice; parameters: Parameters }> | string {
    const out: Array<{ model: ModelChoice; parameters: Parameters }> = [];
    for (const [i, c] of this.choices.entries()) {
      const model = this.host.models().find((m) => m.id === c.model.value && m.available);
      const temperature = Number(c.temperature.value);
      const maxTokens = Number(c.maxTokens.value);
      if (!model) return `Choice ${i + 1}: pick an available model.`;
      if (!c.temperature.value || !(temperature >= 0 && temperature <= 2)) return `Choice ${i + 1}: temperature must be from 0 to 2.`;
      if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 131072) {
        return `Choice ${i + 1}: max tokens must be a whole number from 1 to 131072.`;
      }
      out.push({ model, parameters: { ...this.host.parameters(), temperature, maxTokens } });
    }
    return out;
  }

  private async run(): Promise<void> {
    const text = this.promptInput.value.trim();
    const settings = this.settings();
    const problem = !text ? "Enter a prompt to compare." : typeof settings === "string" ? settings : "";
    this.errorEl.textContent = problem;
    this.errorEl.hidden = !problem;
    if (problem || typeof settings === "string") return;
    this.running?.abort();
    const controller = new AbortController();
    this.running = controller;
    this.runButton.disabled = true;
    const prompt: StoredMessage = { role: "user", content: text, createdAt: new Date().toISOString() };
    this.host.status(`Comparing ${settings.length} answers…`);
    const panes = settings.map((s, i) => this.pane(i + 1, s.model, s.parameters));
    this.resultsEl.replaceChildren(...panes.map((p) => p.root));
    this.resultsEl.scrollIntoView({ block: "start" });
    const runs = settings.map((s, i) =>
      this.answerOne(controller.signal, prompt, s.model, s.parameters, panes[i]),
    );
    await Promise.all(runs);
    if (this.running === controller) {
      this.running = null;
      this.runButton.disabled = false;
      this.host.status("Comparison complete. Pick the answer to continue with.");
    }
  }

  private pane(n: number, model: ModelChoice, p: Parameters) {
    const content = el("div", { className: "content" });
    const usage = el("p", { className: "usage" });
    const pick = el("button", { type: "button", className: "small primary", hidden: true }, `Continue with choice ${n}`);
    const title = `Choice ${n}: ${model.id} · temperature ${p.temperature} · max tokens ${p.maxTokens}`;
    const root = el("article", { className: "compare-pane message assistant", "aria-busy": "true", "aria-label": `Answer of choice ${n}` },
      el("h3", { className: "author" }, title), content, usage, pick);
    return { root, content, usage, pick };
  }

  private async answerOne(
    signal: AbortSignal,
    prompt: StoredMessage,
    model: ModelChoice,
    parameters: Parameters,
    pane: ReturnType<ComparePanel["pane"]>,
  ): Promise<void> {
    const render = perFrame((soFar: string) => (pane.content.innerHTML = renderMarkdown(soFar)));
    let answer: TimedAnswer;
    try {
      answer = await streamTimed(this.host.api, this.host.request(model, prompt, parameters), signal, render);
    } catch (error) {
      pane.root.setAttribute("aria-busy", "false");
      if (!(error instanceof DOMException)) {
        const words = error instanceof ApiError ? error.message : String(error);
        pane.content.replaceChildren(el("p", { className: "error" }, `No answer: ${words}`));
      }
      return;
    }
    const message = assistantMessage(model.id, answer.result, answer.failure, answer.firstTokenMs);
    message.metadata = { ...message.metadata, compared: { temperature: parameters.temperature, maxTokens: parameters.maxTokens } };
    pane.root.setAttribute("aria-busy", "false");
    pane.content.innerHTML = renderMarkdown(message.content);
    addCodeToolbars(pane.content, (m) => this.host.status(m));
    if (answer.failure) pane.content.append(el("p", { className: "error" }, `Error: ${answer.failure}`));
    pane.usage.textContent = usageLine(message.metadata ?? {});
    if (!message.content) return;
    pane.pick.hidden = false;
    pane.pick.addEventListener("click", () => {
      this.running?.abort();
      void this.host.choose(prompt, message).then(() => this.close());
    });
  }
}
