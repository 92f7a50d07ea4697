/** A few DOM helpers: elements are built with textContent, never from HTML strings. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false) {
      element.setAttribute(name, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(child);
    }
  }
  return element;
}

/** A labelled input (Playwright and screen readers find it by its label). */
export function field(
  label: string,
  name: string,
  type: string,
  extra: Record<string, string | boolean> = {},
): HTMLElement {
  const id = `field-${name}`;
  return h(
    "p",
    { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name, type, required: true, ...extra }),
  );
}

export function value(form: HTMLFormElement, name: string): string {
  const input = form.elements.namedItem(name);
  return input instanceof HTMLInputElement || input instanceof HTMLSelectElement ? input.value : "";
}
