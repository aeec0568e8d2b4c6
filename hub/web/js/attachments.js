// Attachments in the page: the composer's tray (attach button, drag and drop onto the
// conversation, upload progress) and the files shown under a message (image thumbnails and
// file links).
//
// Attachments of a private room need the access token, which an <img src> or a plain link
// cannot send: files and thumbnails are fetched with `Authorization` and shown through blob:
// URLs (the page's CSP allows `img-src blob:`), each fetched once per page. User text (file
// names) only ever goes in as text (see dom.js).

import { el } from "./dom.js";

/// Most attachments one message carries (PROTOCOL.md, MAX_ATTACHMENTS_PER_MESSAGE).
export const MAX_ATTACHMENTS = 10;

let api = null;
/// url -> Promise of a blob: URL.
const fetched = new Map();

/// Gives the module the REST client (for the token) once, at start.
export function configure(restApi) {
  api = restApi;
}

async function authHeaders() {
  if (!api || !api.session) return {};
  return { authorization: `Bearer ${await api.token()}` };
}

/// A blob: URL of the file at `url` (same origin), fetched with the caller's token.
function blobUrl(url) {
  if (!fetched.has(url)) {
    const promise = (async () => {
      const response = await fetch(url, { headers: await authHeaders(), credentials: "omit" });
      if (!response.ok) throw new Error(`${response.status}`);
      return URL.createObjectURL(await response.blob());
    })();
    promise.catch(() => fetched.delete(url));
    fetched.set(url, promise);
  }
  return fetched.get(url);
}

/// `1.2 MiB`, `512 B`.
export function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/// Saves the file at `url` under `name` (a download, never opened as a page).
async function save(url, name) {
  const href = await blobUrl(url);
  const link = el("a", { href, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

/// The files of message `m`, as a list to put under its body; null when it has none.
export function attachmentList(m) {
  if (!m.attachments || m.attachments.length === 0) return null;
  const list = el("ul", { class: "attachments", "aria-label": "Attachments" });
  for (const a of m.attachments) {
    const label = `${a.name} (${humanSize(a.size)})`;
    const button = el("button", { type: "button", class: "attachment-link", title: `Download ${a.name}` });
    if (a.thumbnail_url) {
      const img = el("img", { class: "attachment-thumb", alt: a.name });
      blobUrl(a.thumbnail_url).then((src) => { img.src = src; }, () => img.classList.add("broken"));
      button.append(img);
    }
    button.append(el("span", { class: "attachment-name", text: label }));
    button.addEventListener("click", () => save(a.url, a.name).catch(() => button.classList.add("broken")));
    list.append(el("li", { class: a.thumbnail_url ? "attachment image" : "attachment file", data: { id: a.id } }, button));
  }
  return list;
}

/// The composer's tray: files being uploaded to the open room, then sent with the next message.
export class Tray {
  /// `room()`: the open room's id; `onError(message)`: shows a refusal under the composer.
  constructor({ room, onError }) {
    this.room = room;
    this.onError = onError;
    this.items = []; // {key, room, file, state: "uploading"|"done"|"failed", loaded, info, xhr}
    this.next = 0;
    this.bind();
  }

  bind() {
    const input = document.getElementById("attach-input");
    document.getElementById("attach-button").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = "";
    });
    const zone = document.getElementById("room-view");
    zone.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      zone.classList.add("dropping");
    });
    zone.addEventListener("dragleave", (event) => {
      if (event.target === zone) zone.classList.remove("dropping");
    });
    zone.addEventListener("drop", (event) => {
      zone.classList.remove("dropping");
      if (!event.dataTransfer || event.dataTransfer.files.length === 0) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
    document.getElementById("attach-tray").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (button) this.remove(Number(button.dataset.key));
    });
  }

  /// Items of the open room (the others were for a room left since: dropped).
  current() {
    const room = this.room();
    this.items = this.items.filter((i) => i.room === room);
    return this.items;
  }

  add(files) {
    const room = this.room();
    if (!room) return;
    for (const file of files) {
      if (this.current().length >= MAX_ATTACHMENTS) {
        this.onError(`A message carries at most ${MAX_ATTACHMENTS} files.`);
        break;
      }
      const item = { key: this.next++, room, file, state: "uploading", loaded: 0, info: null, xhr: null };
      this.items.push(item);
      this.upload(item);
    }
    this.render();
  }

  async upload(item) {
    const headers = await authHeaders();
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", `/v1/rooms/${encodeURIComponent(item.room)}/attachments?name=${encodeURIComponent(item.file.name)}`);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) {
        item.loaded = event.loaded;
        this.render();
      }
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status === 201 && data) {
        Object.assign(item, { state: "done", info: data, loaded: item.file.size });
      } else {
        item.state = "failed";
        item.error = (data && data.error && data.error.message) || `upload failed (${xhr.status})`;
      }
      this.render();
    });
    xhr.addEventListener("error", () => {
      Object.assign(item, { state: "failed", error: "upload failed" });
      this.render();
    });
    xhr.send(item.file);
  }

  remove(key) {
    const item = this.items.find((i) => i.key === key);
    if (item && item.xhr && item.state === "uploading") item.xhr.abort();
    this.items = this.items.filter((i) => i.key !== key);
    this.render();
  }

  /// Whether an upload of the open room is still under way.
  busy() {
    return this.current().some((i) => i.state === "uploading");
  }

  /// The ids of the open room's uploaded files.
  ready() {
    return this.current().filter((i) => i.state === "done").map((i) => i.info.id);
  }

  /// Empties the tray once its files are sent.
  clear() {
    this.items = this.items.filter((i) => i.room !== this.room());
    this.render();
  }

  render() {
    const tray = document.getElementById("attach-tray");
    const items = this.current();
    tray.hidden = items.length === 0;
    tray.replaceChildren(
      ...items.map((i) => {
        const status = {
          uploading: `${Math.floor((100 * i.loaded) / Math.max(i.file.size, 1))}%`,
          done: humanSize(i.file.size),
          failed: i.error || "failed",
        }[i.state];
        return el(
          "li",
          { class: `tray-item ${i.state}` },
          el("span", { class: "tray-name", text: i.file.name }),
          i.state === "uploading"
            ? el("progress", { max: String(Math.max(i.file.size, 1)), value: String(i.loaded), "aria-label": `Uploading ${i.file.name}` })
            : null,
          el("span", { class: "tray-status", text: status }),
          el("button", { type: "button", class: "tray-remove", data: { key: String(i.key) }, "aria-label": `Remove ${i.file.name}`, text: "×" }),
        );
      }),
    );
  }
}
