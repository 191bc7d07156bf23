// Markdown to safe HTML: marked renders, DOMPurify removes anything executable (model output is untrusted).
// Raw HTML in the output is shown as text and images as links: neither is ever parsed as markup, not even in
// DOMPurify's inert document, where the browser would still fetch the images a model names and check their
// inline handlers against the page's Content-Security-Policy (reporting violations).

import DOMPurify from "dompurify";
import { Marked } from "marked";
import { highlightCode } from "./code";

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const marked = new Marked(
  { gfm: true, breaks: true, async: false },
  {
    renderer: {
      html: ({ text }) => escapeHtml(text),
      image: ({ href, text }) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
      code: ({ text, lang }) => {
        const { html, language } = highlightCode(text, lang);
        const tag = language ? ` data-language="${escapeHtml(language)}"` : "";
        return `<pre><code class="hljs"${tag}>${html}</code></pre>\n`;
      },
    },
  },
);

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const PURIFY: Parameters<typeof DOMPurify.sanitize>[1] = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "img"],
  FORBID_ATTR: ["style"],
};

/** Sanitized HTML for a markdown string. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return DOMPurify.sanitize(html, PURIFY) as string;
}
