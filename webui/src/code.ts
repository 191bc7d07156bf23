// Fenced code in answers: syntax highlighting (highlight.js core with the languages chat answers mostly use, kept
// small for the page's JavaScript budget) and a copy button on each block.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import dockerfile from "highlight.js/lib/languages/dockerfile";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { el } from "./dom";

const LANGUAGES = { bash, c, cpp, css, dockerfile, go, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);
hljs.registerLanguage("plaintext", () => ({ name: "plaintext", contains: [] }));
/** Guessing a language costs one pass per language: skipped for long blocks (they stay plain, still readable). */
const AUTO_DETECT_LIMIT = 20_000;

/** Highlighted HTML of a code block (hljs escapes the code); `lang` from the fence, else a guess. */
export function highlightCode(code: string, lang: string | undefined): { html: string; language: string | null } {
  const name = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, language: name };
  }
  if (!name && code.length <= AUTO_DETECT_LIMIT) {
    const guess = hljs.highlightAuto(code);
    if (guess.language && guess.relevance >= 5) return { html: guess.value, language: guess.language };
  }
  return { html: hljs.highlight(code, { language: "plaintext", ignoreIllegals: true }).value, language: name || null };
}

/** Copy text to the clipboard; false when the browser refuses (no permission, not a secure context). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A button that copies `text()` and says so on itself for a moment (and to screen readers through `status`). */
export function copyButton(label: string, text: () => string, status: (message: string) => void): HTMLButtonElement {
  const button = el("button", { type: "button", className: "small copy", "aria-label": label }, "Copy");
  button.addEventListener("click", () => {
    void copyText(text()).then((ok) => {
      button.textContent = ok ? "Copied" : "Copy failed";
      status(ok ? "Copied to the clipboard." : "The browser refused to copy; select the text instead.");
      window.setTimeout(() => (button.textContent = "Copy"), 1500);
    });
  });
  return button;
}

/** Give every code block in `container` a bar with its language and a copy button (after the final render). */
export function addCodeToolbars(container: HTMLElement, status: (message: string) => void): void {
  container.querySelectorAll("pre > code").forEach((code, index) => {
    const pre = code.parentElement!;
    const language = code.getAttribute("data-language");
    const bar = el(
      "div",
      { className: "code-bar" },
      el("span", { className: "code-language" }, language ?? "code"),
      copyButton(`Copy code block ${index + 1}`, () => code.textContent ?? "", status),
    );
    pre.before(bar);
    const figure = el("div", { className: "code-block" });
    bar.before(figure);
    figure.append(bar, pre);
  });
}
