// Custom emoticons: the hub's list (`GET /v1/emoticons`, fetched at start and again when an
// `emoticons` frame says it changed), `:shortcode:` in message bodies shown as its image, and
// the picker beside the composer. User text only ever goes in as text nodes (see dom.js): a
// body is split around the known shortcodes, never parsed as markup.

import { el } from "./dom.js";

/// A shortcode between colons, as the hub accepts them (`[a-z0-9_]{2,32}`).
const SHORTCODE = /:([a-z0-9_]{2,32}):/g;
/// Where every emoticon image is: the hub's public, content-addressed media.
const MEDIA_PREFIX = "/v1/media/";

/// The page's copy of the hub's emoticons. `version` grows with each change, for views that
/// cache what they rendered.
class EmoticonList {
  constructor() {
    /** shortcode -> image URL */
    this.urls = new Map();
    this.etag = null;
    this.version = 0;
    this.listeners = new Set();
    this.queue = Promise.resolve();
  }

  /// Calls `fn` after each change of the list.
  subscribe(fn) {
    this.listeners.add(fn);
  }

  /// Reads the list again, unless `etag` (from an `emoticons` frame) is the one held. Calls are
  /// run one after the other; a failure keeps the list held (the next frame or start retries).
  refresh(etag) {
    this.queue = this.queue.then(() => this.fetch(etag)).catch(() => {});
    return this.queue;
  }

  async fetch(etag) {
    if (etag && etag === this.etag) return;
    // `no-cache`: the browser revalidates with the ETag it holds (a 304 costs no body).
    const response = await fetch("/v1/emoticons", { cache: "no-cache", credentials: "omit" });
    if (!response.ok) return;
    const tag = (response.headers.get("ETag") || "").replaceAll('"', "");
    if (tag && tag === this.etag) return;
    const body = await response.json();
    const urls = new Map();
    for (const e of (body && body.emoticons) || []) {
      if (typeof e.shortcode !== "string" || typeof e.url !== "string") continue;
      if (!e.url.startsWith(MEDIA_PREFIX)) continue;
      urls.set(e.shortcode, e.url);
    }
    this.urls = urls;
    this.etag = tag || null;
    this.version += 1;
    for (const fn of this.listeners) fn();
  }

  /// The image of `code`.
  image(code, url) {
    const label = `:${code}:`;
    return el("img", { class: "emoticon", src: url, alt: label, title: label, loading: "lazy", decoding: "async" });
  }

  /// `text` as nodes: text nodes, with each known `:shortcode:` as its image.
  render(text) {
    if (this.urls.size === 0 || !text.includes(":")) return [document.createTextNode(text)];
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(SHORTCODE)) {
      const url = this.urls.get(match[1]);
      if (!url) continue;
      if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
      nodes.push(this.image(match[1], url));
      last = match.index + match[0].length;
    }
    if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
    return nodes;
  }
}

/// The page's one list.
export const emoticons = new EmoticonList();

/// A message body's nodes (see `EmoticonList.render`).
export function withEmoticons(text) {
  return emoticons.render(text);
}

/// The picker: `toggle` (a button beside the composer) opens `panel`, a grid of the emoticons;
/// choosing one inserts `:shortcode:` at the cursor of `textarea`. The button is hidden while
/// the hub has none. Escape or a click elsewhere closes it.
export class Picker {
  constructor({ toggle, panel, textarea }) {
    this.toggle = toggle;
    this.panel = panel;
    this.textarea = textarea;
    this.rendered = -1;
    toggle.addEventListener("click", () => (panel.hidden ? this.open() : this.close(false)));
    panel.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-shortcode]");
      if (button) this.insert(button.dataset.shortcode);
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close(true);
      }
    });
    document.addEventListener("click", (event) => {
      if (!panel.hidden && !panel.contains(event.target) && !toggle.contains(event.target)) this.close(false);
    });
    emoticons.subscribe(() => this.update());
    this.update();
  }

  update() {
    this.toggle.hidden = emoticons.urls.size === 0;
    if (this.toggle.hidden) this.close(false);
    if (this.rendered === emoticons.version) return;
    this.rendered = emoticons.version;
    const codes = [...emoticons.urls.keys()].sort();
    this.panel.replaceChildren(
      ...codes.map((code) =>
        el(
          "button",
          { type: "button", class: "emoticon-choice", data: { shortcode: code }, title: `:${code}:`, "aria-label": `:${code}:` },
          emoticons.image(code, emoticons.urls.get(code)),
        ),
      ),
    );
  }

  open() {
    this.update();
    this.panel.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    const first = this.panel.querySelector("button");
    if (first) first.focus();
  }

  close(refocus) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    if (refocus) this.toggle.focus();
  }

  /// Inserts `:code:` at the cursor (replacing a selection), with a space before it when it
  /// would touch a word, and gives the composer the focus back.
  insert(code) {
    const t = this.textarea;
    const start = t.selectionStart ?? t.value.length;
    const end = t.selectionEnd ?? start;
    const before = start > 0 && !/\s/.test(t.value[start - 1]) ? " " : "";
    t.setRangeText(`${before}:${code}: `, start, end, "end");
    t.dispatchEvent(new Event("input", { bubbles: true }));
    this.close(false);
    t.focus();
  }
}
