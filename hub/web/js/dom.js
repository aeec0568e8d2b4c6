// DOM helpers that keep user text as text: elements are built with createElement, attributes
// set with setAttribute and content with textContent or text nodes, never from markup.

/// Creates an element. `props`: `class`, `text` (set as textContent), `data` (dataset), and any
/// other attribute (set with setAttribute, so never parsed as markup). Children are nodes or
/// strings (added as text nodes).
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function timeOf(ts) {
  const date = new Date(ts);
  return el("time", { datetime: date.toISOString(), title: date.toLocaleString(), text: date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
}

export function listOfNames(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/// Keeps `parent`'s children equal to `nodes`, in order, moving only what is out of place.
export function reconcile(parent, nodes) {
  const wanted = new Set(nodes);
  for (const child of [...parent.children]) if (!wanted.has(child)) child.remove();
  let cursor = parent.firstElementChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextElementSibling;
    else parent.insertBefore(node, cursor);
  }
}
