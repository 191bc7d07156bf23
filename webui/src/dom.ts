// Small DOM helpers: typed lookups and element construction without innerHTML.

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing element #${id}`);
  return element as T;
}

type Attributes = Record<string, string | boolean | undefined>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (name === "className") element.className = String(value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children);
  return element;
}

/** Show a message in an alert element (or hide it when the message is empty). */
export function announce(element: HTMLElement, message: string): void {
  element.textContent = message;
  element.hidden = !message;
}

/** Run `fn` at most once per animation frame, with the latest arguments. */
export function perFrame<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let pending: A | null = null;
  return (...args: A) => {
    const first = pending === null;
    pending = args;
    if (first) {
      requestAnimationFrame(() => {
        const latest = pending!;
        pending = null;
        fn(...latest);
      });
    }
  };
}

/**
 * The head of a view shown in place of the conversation (templates, API tokens, usage): its title and a button that
 * closes it. Escape anywhere in `root` closes it too, except in a select (whose Escape closes its own list).
 */
export function viewHead(root: HTMLElement, titleId: string, title: string, closeLabel: string, close: () => void): HTMLElement {
  const button = el("button", { type: "button", className: "small" }, closeLabel);
  button.addEventListener("click", close);
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !(event.target instanceof HTMLSelectElement)) {
      event.preventDefault();
      close();
    }
  });
  return el("div", { className: "compare-head" }, el("h2", { id: titleId }, title), button);
}
