// List items of the conversation: stored messages and messages still on their way. User text
// (bodies, usernames) only ever goes in as text (see dom.js).

import { attachmentList } from "./attachments.js";
import { el, timeOf } from "./dom.js";

/// The list item of stored message `m`: author, time, body (or a tombstone), and for the
/// author's own messages Edit and Delete, the edit form (`editing`) or the delete confirmation
/// (`confirming`). Buttons carry `data-action` and `data-seq` for the view's delegated handler.
export function messageItem(m, mine, editing, confirming) {
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (m.deleted) classes.push("deleted");
  const li = el("li", { class: classes.join(" "), data: { seq: String(m.seq), from: m.from } });
  const meta = el(
    "div",
    { class: "meta" },
    el("span", { class: "author", text: m.from }),
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
  li.append(el("p", { class: "body", text: m.body }));
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
