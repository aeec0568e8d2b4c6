// List items of the conversation: stored messages and messages still on their way. User text
// (bodies, usernames) only ever goes in as text (see dom.js).

import { attachmentList } from "./attachments.js";
import { el, timeOf } from "./dom.js";
import { withEmoticons } from "./emoticons.js";

/// A message starts a new run (avatar and name shown) unless the one before it is by the same
/// author (a bot and a person of the same name differ) and at most this long before it.
export const RUN_GAP_MS = 5 * 60 * 1000;

/// Whether stored message `m` continues the run of `prev` (the message just above it, or
/// undefined): same author, same kind (bot or not), at most RUN_GAP_MS later.
export function continuesRun(prev, m) {
  return Boolean(prev) && prev.from === m.from && Boolean(prev.bot) === Boolean(m.bot) && m.ts - prev.ts <= RUN_GAP_MS && m.ts >= prev.ts;
}

/// Bumped when this page changes its user's avatar: the images already shown (and those the
/// browser keeps for the page by URL) would show the old one, so the URL changes.
let avatarVersion = 0;

/// The avatar redirect of `username`, 64 px.
function avatarUrl(username) {
  const version = avatarVersion ? `&v=${avatarVersion}` : "";
  return `/v1/users/${encodeURIComponent(username)}/avatar?size=64${version}`;
}

/// Shows the new avatar of `username` (changed from this page) beside their messages.
export function avatarChanged(username) {
  avatarVersion++;
  for (const img of document.querySelectorAll("#messages img.avatar")) {
    if (img.dataset.user === username) {
      img.classList.remove("placeholder");
      img.src = avatarUrl(username);
    }
  }
}

/// The avatar beside the first message of a run: the author's current avatar through the
/// redirect (`/v1/users/{username}/avatar`, asked again on each load, its target cached
/// forever), 32 px shown from the 64 px image; lazy. A bot has no account, so no avatar: a
/// placeholder of the same size. An image that fails (a deleted account) shows as the
/// placeholder too.
function avatar(m) {
  if (m.bot) return el("span", { class: "avatar placeholder", "aria-hidden": "true" });
  const img = el("img", {
    class: "avatar",
    src: avatarUrl(m.from),
    data: { user: m.from },
    alt: "",
    width: "32",
    height: "32",
    loading: "lazy",
    decoding: "async",
  });
  img.addEventListener("error", () => img.classList.add("placeholder"), { once: true });
  return img;
}

/// The list item of stored message `m`: author, time, body (or a tombstone), and for the
/// author's own messages Edit and Delete, the edit form (`editing`) or the delete confirmation
/// (`confirming`). Buttons carry `data-action` and `data-seq` for the view's delegated handler.
/// The first message of a run (`continued` false) has the author's avatar and name; the next
/// ones of the run (`continued`) leave the avatar column empty and say the name to screen
/// readers only.
export function messageItem(m, mine, editing, confirming, continued = false) {
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (m.deleted) classes.push("deleted");
  if (continued) classes.push("continued");
  const li = el("li", { class: classes.join(" "), data: { seq: String(m.seq), from: m.from } });
  if (!continued) li.append(avatar(m));
  const meta = el(
    "div",
    { class: "meta" },
    el("span", { class: continued ? "author visually-hidden" : "author", text: m.from }),
    m.bot ? el("span", { class: "bot-badge", title: "Posted by a bot through the server API", text: "bot" }) : null,
    " ",
    timeOf(m.ts),
    m.edited_ts && !m.deleted ? el("span", { class: "edited", text: " (edited)" }) : null,
  );
  li.append(meta);
  if (m.deleted) {
    li.append(el("p", { class: "body tombstone", text: "Message deleted" }));
    return li;
  }
  if (editing) {
    const id = `edit-${m.seq}`;
    const textarea = el("textarea", { id, name: "body", rows: "2" });
    textarea.value = m.body;
    li.append(
      el(
        "form",
        { class: "edit-form", data: { seq: String(m.seq) } },
        el("label", { for: id, class: "visually-hidden", text: "Edit message" }),
        textarea,
        el("button", { type: "submit", text: "Save" }),
        el("button", { type: "button", data: { action: "cancel-edit", seq: String(m.seq) }, text: "Cancel" }),
      ),
    );
    queueMicrotask(() => {
      textarea.focus();
      textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    });
    return li;
  }
  li.append(el("p", { class: "body" }, ...withEmoticons(m.body)));
  const files = attachmentList(m);
  if (files) li.append(files);
  if (mine && confirming) {
    const yes = el("button", { type: "button", class: "danger", data: { action: "confirm-delete", seq: String(m.seq) }, text: "Delete" });
    li.append(
      el(
        "div",
        { class: "actions", role: "group", "aria-label": "Confirm deletion" },
        el("span", { text: "Delete this message?" }),
        yes,
        el("button", { type: "button", data: { action: "cancel-delete", seq: String(m.seq) }, text: "Keep" }),
      ),
    );
    queueMicrotask(() => yes.focus());
  } else if (mine) {
    li.append(
      el(
        "div",
        { class: "actions" },
        el("button", { type: "button", data: { action: "edit", seq: String(m.seq) }, "aria-label": "Edit message", text: "Edit" }),
        el("button", { type: "button", data: { action: "delete", seq: String(m.seq) }, "aria-label": "Delete message", text: "Delete" }),
      ),
    );
  }
  return li;
}

/// The list item of a message composed here and not yet seen back from the server.
export function pendingItem(p, me) {
  const li = el("li", { class: `message mine pending ${p.state}`, data: { pending: p.client_msg_id, from: me } });
  const state = { sending: "sending…", sent: "sent", failed: "not sent" }[p.state];
  li.append(
    el("div", { class: "meta" }, el("span", { class: "author", text: me }), " ", el("span", { class: "state", text: state })),
    el("p", { class: "body", text: p.body }),
  );
  if (p.state === "failed") {
    li.append(
      el(
        "div",
        { class: "actions" },
        el("span", { class: "form-error", text: p.error || p.code || "failed" }),
        el("button", { type: "button", data: { action: "retry", cmid: p.client_msg_id }, text: "Retry" }),
        el("button", { type: "button", data: { action: "discard", cmid: p.client_msg_id }, text: "Discard" }),
      ),
    );
  }
  return li;
}
