// Prompt templates: personas (a system prompt) and directives (a prompt with {{placeholders}}), each private,
// shared with groups, or global. The view lists, creates, edits and deletes them and applies one to a chat.
// Like Compare, its controls exist only while it is open.

import { ApiClient, ApiError } from "./api";
import { announce, el, viewHead } from "./dom";

export type TemplateKind = "persona" | "directive";
export type Visibility = "private" | "groups" | "global";

export interface TemplateWrite {
  title: string;
  kind: TemplateKind;
  body: string;
  description: string;
  visibility: Visibility;
  groups: string[];
}

export interface PromptTemplate extends TemplateWrite {
  templateId: string;
  owner: string;
  createdAt: string;
  updatedAt: string;
  placeholders: string[];
  editable?: boolean;
}

const PLACEHOLDER = /\{\{([A-Za-z0-9_]+)\}\}/g;

/** A directive's text with each {{name}} replaced by its value (the API names the placeholders; same syntax). */
export function fillPlaceholders(body: string, values: Record<string, string>): string {
  return body.replace(PLACEHOLDER, (whole, name: string) => values[name] ?? whole);
}

export class TemplatesApi {
  constructor(private readonly api: ApiClient) {}

  async list(): Promise<PromptTemplate[]> {
    return (await this.api.get<{ templates: PromptTemplate[] }>("/prompt-templates")).templates;
  }

  create(body: TemplateWrite): Promise<PromptTemplate> {
    return this.api.request("POST", "/prompt-templates", { body });
  }

  update(id: string, body: TemplateWrite): Promise<PromptTemplate> {
    return this.api.request("PUT", `/prompt-templates/${encodeURIComponent(id)}`, { body });
  }

  delete(id: string): Promise<{ deleted: string }> {
    return this.api.request("DELETE", `/prompt-templates/${encodeURIComponent(id)}`);
  }
}

export interface TemplatesHost {
  /** Start a new chat whose system prompt is the persona's text. */
  usePersona(template: PromptTemplate): void;
  /** Put a filled directive into the message box. */
  fillPrompt(text: string, template: PromptTemplate): void;
  status(message: string): void;
  closed(): void;
}

const KIND_LABEL: Record<TemplateKind, string> = { persona: "Personas", directive: "Directives" };
const VISIBILITY_LABEL: Record<Visibility, string> = {
  private: "only you",
  groups: "shared with groups",
  global: "everyone",
};

export class TemplatesView {
  private readonly root: HTMLElement;
  private readonly body = el("div", { className: "templates-body" });
  private readonly errorEl = el("p", { className: "error", role: "alert", hidden: true });
  private templates: PromptTemplate[] = [];

  constructor(
    private readonly api: TemplatesApi,
    private readonly host: TemplatesHost,
  ) {
    this.root = el("section", { id: "templates-view", className: "templates", "aria-labelledby": "templates-title" });
    this.root.append(
      viewHead(this.root, "templates-title", "Prompt templates", "Close templates", () => this.close()),
      this.errorEl,
      this.body,
    );
  }

  get element(): HTMLElement {
    return this.root;
  }

  close(): void {
    this.root.remove();
    this.host.closed();
  }

  async load(focus = true): Promise<void> {
    try {
      this.templates = await this.api.list();
    } catch (error) {
      this.fail("The templates could not be loaded", error);
      return;
    }
    this.renderList(focus);
  }

  private fail(what: string, error: unknown): void {
    if (error instanceof ApiError && error.isAuthFailure) return;
    announce(this.errorEl, `${what}: ${error instanceof Error ? error.message : String(error)}`);
  }

  private renderList(focus: boolean): void {
    const create = el("button", { type: "button", className: "primary" }, "New template");
    create.addEventListener("click", () => this.renderForm(null));
    const sections = (["persona", "directive"] as TemplateKind[]).map((kind) => {
      const mine = this.templates.filter((t) => t.kind === kind);
      const headingId = `templates-${kind}`;
      return el("section", { className: "template-kind", "aria-labelledby": headingId },
        el("h3", { id: headingId }, KIND_LABEL[kind]),
        mine.length
          ? el("ul", { className: "template-list" }, ...mine.map((t) => this.item(t)))
          : el("p", { className: "hint" }, kind === "persona" ? "No personas yet." : "No directives yet."),
      );
    });
    this.body.replaceChildren(create, ...sections);
    if (focus) create.focus();
  }

  private item(t: PromptTemplate): HTMLLIElement {
    const use = el("button", { type: "button", className: "small primary", "aria-label": `Use ${t.title}` }, "Use");
    use.addEventListener("click", () => this.use(t));
    const actions = el("span", { className: "session-actions" }, use);
    if (t.editable) {
      const edit = el("button", { type: "button", className: "small", "aria-label": `Edit ${t.title}` }, "Edit");
      edit.addEventListener("click", () => this.renderForm(t));
      const remove = el("button", { type: "button", className: "small danger-link", "aria-label": `Delete ${t.title}` }, "Delete");
      remove.addEventListener("click", () => void this.remove(t));
      actions.append(edit, remove);
    }
    const about = [VISIBILITY_LABEL[t.visibility] + (t.groups.length ? `: ${t.groups.join(", ")}` : ""), `by ${t.owner}`];
    if (t.placeholders.length) about.push(`fills ${t.placeholders.map((p) => `{{${p}}}`).join(" ")}`);
    return el("li", { className: "template", "data-template-id": t.templateId },
      el("p", { className: "template-title" }, t.title),
      ...(t.description ? [el("p", { className: "hint" }, t.description)] : []),
      el("p", { className: "hint" }, about.join(" · ")),
      actions,
    );
  }

  private use(t: PromptTemplate): void {
    if (t.kind === "persona") {
      this.close();
      this.host.usePersona(t);
    } else if (!t.placeholders.length) {
      this.close();
      this.host.fillPrompt(t.body, t);
    } else {
      this.renderFill(t);
    }
  }

  /** A form with one field per placeholder; submitting it fills the message box. */
  private renderFill(t: PromptTemplate): void {
    const inputs = t.placeholders.map((name) => el("textarea", { id: `fill-${name}`, rows: "2", required: true }));
    const form = el("form", { className: "template-form", novalidate: true },
      el("h3", {}, `Fill in “${t.title}”`),
      ...t.placeholders.flatMap((name, i) => [el("label", { for: `fill-${name}` }, name.replace(/_/g, " ")), inputs[i]]),
      el("p", { className: "error", role: "alert", hidden: true }),
      el("div", { className: "compare-actions" },
        el("button", { type: "submit", className: "primary" }, "Fill the prompt"),
        el("button", { type: "button", className: "small", "data-cancel": true }, "Back to templates"),
      ),
    );
    form.querySelector("[data-cancel]")?.addEventListener("click", () => this.renderList(true));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const empty = t.placeholders.filter((_, i) => !inputs[i].value.trim());
      inputs.forEach((input) => input.toggleAttribute("aria-invalid", !input.value.trim()));
      if (empty.length) {
        announce(form.querySelector<HTMLElement>(".error")!, `Fill in: ${empty.join(", ")}.`);
        return;
      }
      const values = Object.fromEntries(t.placeholders.map((name, i) => [name, inputs[i].value.trim()]));
      this.close();
      this.host.fillPrompt(fillPlaceholders(t.body, values), t);
    });
    this.body.replaceChildren(form);
    inputs[0]?.focus();
  }

  /** Create (`t` null) or edit a template. */
  private renderForm(t: PromptTemplate | null): void {
    const field = <E extends HTMLElement>(id: string, label: string, control: E, hint?: string): Node[] => {
      control.id = id;
      if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
      return [el("label", { for: id }, label), control, ...(hint ? [el("p", { id: `${id}-hint`, className: "hint" }, hint)] : [])];
    };
    const title = el("input", { type: "text", maxlength: "200", required: true, value: t?.title ?? "" });
    const kind = el("select", {},
      el("option", { value: "persona" }, "Persona (a system prompt)"),
      el("option", { value: "directive" }, "Directive (a prompt with {{placeholders}})"));
    kind.value = t?.kind ?? "persona";
    const text = el("textarea", { rows: "6", maxlength: "20000", required: true });
    text.value = t?.body ?? "";
    const description = el("input", { type: "text", maxlength: "1000", value: t?.description ?? "" });
    const visibility = el("select", {},
      el("option", { value: "private" }, "Only me"),
      el("option", { value: "groups" }, "Groups I name"),
      el("option", { value: "global" }, "Everyone (administrators only)"));
    visibility.value = t?.visibility ?? "private";
    const groups = el("input", { type: "text", value: (t?.groups ?? []).join(", ") });
    const groupsBlock = el("div", { className: "template-groups" },
      ...field("template-groups", "Group names", groups, "Separate names with commas."));
    const showGroups = () => (groupsBlock.hidden = visibility.value !== "groups");
    visibility.addEventListener("change", showGroups);
    showGroups();
    const error = el("p", { className: "error", role: "alert", hidden: true });
    const form = el("form", { className: "template-form", novalidate: true },
      el("h3", {}, t ? `Edit “${t.title}”` : "New template"),
      ...field("template-title", "Title", title),
      ...field("template-kind", "Kind", kind),
      ...field("template-body", "Template text", text, "In a directive, {{name}} marks a blank to fill in when it is used."),
      ...field("template-description", "Description (optional)", description),
      ...field("template-visibility", "Who can use it", visibility),
      groupsBlock,
      error,
      el("div", { className: "compare-actions" },
        el("button", { type: "submit", className: "primary" }, t ? "Save template" : "Create template"),
        el("button", { type: "button", className: "small", "data-cancel": true }, "Cancel"),
      ),
    );
    form.querySelector("[data-cancel]")?.addEventListener("click", () => this.renderList(true));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const write: TemplateWrite = {
        title: title.value.trim(),
        kind: kind.value as TemplateKind,
        body: text.value,
        description: description.value.trim(),
        visibility: visibility.value as Visibility,
        groups: visibility.value === "groups" ? groups.value.split(",").map((g) => g.trim()).filter(Boolean) : [],
      };
      const missing = [!write.title && "a title", !write.body.trim() && "the template text",
        write.visibility === "groups" && !write.groups.length && "at least one group"].filter(Boolean);
      title.toggleAttribute("aria-invalid", !write.title);
      text.toggleAttribute("aria-invalid", !write.body.trim());
      if (missing.length) {
        announce(error, `Enter ${missing.join(" and ")}.`);
        return;
      }
      void this.save(t, write, error);
    });
    this.body.replaceChildren(form);
    title.focus();
  }

  private async save(t: PromptTemplate | null, write: TemplateWrite, error: HTMLElement): Promise<void> {
    try {
      const saved = t ? await this.api.update(t.templateId, write) : await this.api.create(write);
      this.host.status(`${t ? "Saved" : "Created"} the template “${saved.title}”.`);
    } catch (failure) {
      if (failure instanceof ApiError && failure.isAuthFailure) return;
      announce(error, `The template could not be saved: ${failure instanceof Error ? failure.message : String(failure)}`);
      return;
    }
    await this.load();
  }

  private async remove(t: PromptTemplate): Promise<void> {
    if (!window.confirm(`Delete the template “${t.title}”? This cannot be undone.`)) return;
    try {
      await this.api.delete(t.templateId);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        this.fail("The template could not be deleted", error);
        return;
      }
    }
    this.host.status(`Deleted the template “${t.title}”.`);
    await this.load();
  }
}
