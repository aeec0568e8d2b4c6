// Rendering and DOM events. Every piece of user text (message bodies, usernames, room names,
// server error messages) goes into the page with `textContent` or `createTextNode`, never as
// markup: this module never assigns innerHTML.

import { Tray } from "./attachments.js";
import { el, listOfNames, reconcile } from "./dom.js";
import { continuesRun, messageItem, pendingItem } from "./messages.js";
import { displayName, unread } from "./store.js";

const $ = (id) => document.getElementById(id);

/// A message list scrolled to within this many pixels of its end counts as "at the bottom".
const BOTTOM_SLACK_PX = 48;
/// Scrolling to within this many pixels of the top loads the next older page.
const TOP_LOAD_PX = 120;
/// Announcements kept in the live region (older ones are removed).
const ANNOUNCEMENTS_KEPT = 5;
/// The message box grows with its text up to this height, then scrolls.
const COMPOSER_MAX_PX = 160;
/// Longest message body, in bytes of UTF-8 (PROTOCOL.md, MAX_BODY_BYTES).
export const MAX_BODY_BYTES = 4096;

export class View {
  /// `actions`: callbacks into app.js (see the calls below).
  constructor(actions) {
    this.actions = actions;
    this.store = null;
    this.roomItems = new Map(); // room id -> {li, sig}
    this.messageItems = new Map(); // key -> {li, sig}
    this.shownRoom = null;
    this.editing = null; // seq of the message being edited
    this.confirming = null; // seq of the message whose deletion awaits confirmation
    this.announced = null;
    this.bind();
  }

  // --- static wiring -------------------------------------------------------------------------

  bind() {
    const a = this.actions;
    this.onSubmit("login-form", (f) => a.login(f.username.value.trim(), f.password.value), "login-error");
    this.onSubmit(
      "register-form",
      (f) => a.register(f.username.value.trim(), f.email.value.trim(), f.password.value),
      "register-error",
    );
    this.onSubmit("create-room-form", async (f) => {
      await a.createRoom(f.name.value.trim(), f.public.checked);
      f.reset();
    }, "create-room-error");
    this.onSubmit("direct-form", async (f) => {
      await a.direct(f.username.value.trim());
      f.reset();
    }, "direct-error");
    this.onSubmit("add-member-form", async (f) => {
      await a.addMember(f.username.value.trim());
      f.reset();
    }, "add-member-error");
    this.onSubmit("composer-form", () => this.submitComposer(), "composer-error");
    this.tray = new Tray({
      room: () => this.store && this.store.active,
      onError: (message) => {
        $("composer-error").textContent = message;
      },
    });

    $("logout").addEventListener("click", () => a.logout());
    $("leave").addEventListener("click", () => a.leave());
    $("back").addEventListener("click", () => this.showPane("rooms"));
    $("toggle-details").addEventListener("click", () => {
      const details = $("room-details");
      details.hidden = !details.hidden;
      $("toggle-details").setAttribute("aria-expanded", String(!details.hidden));
    });
    $("room-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-room]");
      if (button) a.openRoom(button.dataset.room);
    });

    const composer = $("composer");
    composer.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("composer-form").requestSubmit();
      }
    });
    composer.addEventListener("input", () => {
      this.fitComposer();
      if (composer.value.trim()) a.typing();
    });

    const scroller = $("scroller");
    scroller.addEventListener("scroll", () => {
      if (scroller.scrollTop < TOP_LOAD_PX) a.loadOlder();
      if (this.atBottom()) a.seen();
    });
    $("messages").addEventListener("click", (event) => this.messageAction(event));
    $("messages").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      this.saveEdit(Number(form.dataset.seq), form.elements.body.value);
    });
    $("messages").addEventListener("keydown", (event) => {
      if (!event.target.matches(".edit-form textarea")) return;
      if (event.key === "Escape") {
        event.preventDefault();
        this.stopEditing(Number(event.target.form.dataset.seq));
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
    });
  }

  /// Wires a form: `handler(form)` runs on submit; its error is shown in `errorId`.
  onSubmit(formId, handler, errorId) {
    const form = $(formId);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $(errorId);
      error.textContent = "";
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await handler(form);
      } catch (err) {
        error.textContent = (err && err.message) || "Something went wrong.";
      } finally {
        button.disabled = false;
      }
    });
  }

  submitComposer() {
    const composer = $("composer");
    const body = composer.value;
    if (this.tray.busy()) throw new Error("Wait for the files to finish uploading.");
    const files = this.tray.ready();
    if (!body.trim() && files.length === 0) return;
    const bytes = new TextEncoder().encode(body).length;
    if (bytes > MAX_BODY_BYTES) {
      throw new Error(`The message is too long (${bytes} of at most ${MAX_BODY_BYTES} bytes).`);
    }
    this.actions.send(body, files);
    this.tray.clear();
    composer.value = "";
    this.fitComposer();
    this.scrollToBottom();
  }

  fitComposer() {
    const composer = $("composer");
    composer.style.height = "auto";
    composer.style.height = `${Math.min(composer.scrollHeight, COMPOSER_MAX_PX)}px`;
    composer.style.overflowY = composer.scrollHeight > COMPOSER_MAX_PX ? "auto" : "hidden";
  }

  // --- views ---------------------------------------------------------------------------------

  showAuth(notice) {
    this.store = null;
    $("chat-view").hidden = true;
    $("account").hidden = true;
    $("conn-status").hidden = true;
    $("auth-view").hidden = false;
    const box = $("auth-notice");
    box.textContent = notice || "";
    box.hidden = !notice;
    for (const id of ["login-form", "register-form"]) $(id).reset();
    for (const id of ["login-card", "register-card"]) $(id).hidden = false;
    for (const id of ["forgot-card", "reset-card"]) $(id).hidden = true;
    $("login-username").focus();
  }

  showChat(store) {
    this.store = store;
    this.roomItems.clear();
    this.messageItems.clear();
    $("room-list").replaceChildren();
    $("messages").replaceChildren();
    this.shownRoom = null;
    $("auth-view").hidden = true;
    $("chat-view").hidden = false;
    $("account").hidden = false;
    $("conn-status").hidden = false;
    $("me").textContent = store.me;
    store.subscribe(() => this.render());
    this.render();
  }

  /// Narrow screens show one pane at a time: the room list or the conversation.
  showPane(pane) {
    $("chat-view").dataset.pane = pane;
    if (pane === "rooms") {
      const current = this.store && this.store.active && this.roomItems.get(this.store.active);
      (current ? current.li.querySelector("button") : $("room-name")).focus({ preventScroll: true });
    }
  }

  atBottom() {
    const s = $("scroller");
    return s.scrollHeight - s.scrollTop - s.clientHeight < BOTTOM_SLACK_PX;
  }

  scrollToBottom() {
    const s = $("scroller");
    s.scrollTop = s.scrollHeight;
  }

  focusComposer() {
    $("composer").focus({ preventScroll: true });
  }

  flash(message) {
    $("composer-error").textContent = message;
  }

  announce(text) {
    const region = $("announcer");
    region.append(el("p", { text }));
    while (region.children.length > ANNOUNCEMENTS_KEPT) region.firstElementChild.remove();
  }

  // --- rendering -----------------------------------------------------------------------------

  render() {
    const store = this.store;
    if (!store) return;
    const focused = document.activeElement;
    this.renderStatus(store.connection);
    this.renderRooms(store);
    this.renderConversation(store);
    this.renderAnnouncement(store);
    // Moving a focused element in the DOM blurs it: give focus back.
    if (focused && focused !== document.activeElement && focused.isConnected) focused.focus({ preventScroll: true });
  }

  renderStatus(status) {
    const node = $("conn-status");
    const text = {
      connecting: "Connecting…",
      online: "Online",
      reconnecting: "Reconnecting…",
      stopped: "Offline",
    }[status.state] || status.state;
    if (node.dataset.state !== status.state || node.textContent !== text) {
      node.dataset.state = status.state;
      node.textContent = text;
    }
  }

  renderRooms(store) {
    const rooms = store.sortedRooms();
    const nodes = [];
    const seen = new Set();
    for (const room of rooms) {
      seen.add(room.id);
      const count = unread(room);
      const active = room.id === store.active;
      const name = displayName(room, store.me);
      const sig = `${name}|${count}|${active}|${room.kind}|${room.public}`;
      let item = this.roomItems.get(room.id);
      if (!item) {
        item = { li: el("li"), sig: null };
        this.roomItems.set(room.id, item);
      }
      if (item.sig !== sig) {
        item.sig = sig;
        const kind = room.kind === "direct" ? "Direct" : room.public ? "Public" : "Private";
        const button = el(
          "button",
          { type: "button", class: "room", data: { room: room.id, unread: String(count) }, "aria-current": active ? "page" : null },
          el("span", { class: `room-kind kind-${kind.toLowerCase()}`, title: kind, "aria-hidden": "true", text: room.kind === "direct" ? "@" : "#" }),
          el("span", { class: "room-name", text: name }),
          el("span", { class: "visually-hidden", text: `, ${kind.toLowerCase()}` }),
          count > 0 ? el("span", { class: "badge", text: String(count), "aria-label": `${count} unread` }) : null,
        );
        const hadFocus = item.li.contains(document.activeElement);
        item.li.replaceChildren(button);
        if (hadFocus) button.focus({ preventScroll: true });
      }
      nodes.push(item.li);
    }
    for (const id of [...this.roomItems.keys()]) if (!seen.has(id)) this.roomItems.delete(id);
    reconcile($("room-list"), nodes);
    $("no-rooms").hidden = rooms.length > 0;
  }

  renderConversation(store) {
    const room = store.active ? store.rooms.get(store.active) : null;
    $("no-room").hidden = !!room;
    $("room-view").hidden = !room;
    if (!room) {
      this.shownRoom = null;
      if ($("chat-view").dataset.pane === "conversation") $("chat-view").dataset.pane = "rooms";
      return;
    }
    const switched = this.shownRoom !== room.id;
    if (switched) {
      this.shownRoom = room.id;
      this.messageItems.clear();
      $("messages").replaceChildren();
      this.editing = null;
      this.confirming = null;
      $("composer-error").textContent = "";
      $("add-member-error").textContent = "";
    }
    $("room-title").textContent = displayName(room, store.me);
    const members = room.members ? room.members.size : null;
    const meta = [room.kind === "direct" ? "direct conversation" : room.public ? "public room" : "private room"];
    if (members !== null) meta.push(`${members} member${members === 1 ? "" : "s"}`);
    meta.push(`${room.online.size} online`);
    $("room-meta").textContent = meta.join(" · ");
    $("add-member-form").hidden = room.kind === "direct";
    // A direct room is never left, only hidden until either side writes or it is opened again.
    $("leave").textContent = room.kind === "direct" ? "Hide this conversation" : "Leave this room";
    this.renderMembers(room);

    const scroller = $("scroller");
    const wasAtBottom = switched || this.atBottom();
    const anchor = $("messages").firstElementChild;
    const anchorTop = anchor ? anchor.offsetTop : 0;

    this.renderMessages(store, room);

    if (wasAtBottom) this.scrollToBottom();
    else if (anchor && anchor.isConnected) scroller.scrollTop += anchor.offsetTop - anchorTop;

    // Too few messages to scroll: load older ones until the list fills the view (or ends).
    if (!room.loading && !room.exhausted && room.oldest !== null && scroller.scrollHeight <= scroller.clientHeight) {
      queueMicrotask(() => this.actions.loadOlder());
    }

    const history = $("history-status");
    const text = room.loading ? "Loading older messages…" : room.exhausted ? "This is the beginning of the conversation." : "";
    if (history.textContent !== text) history.textContent = text;

    const typists = store.typists(room);
    $("typing").textContent = typists.length ? `${listOfNames(typists)} ${typists.length === 1 ? "is" : "are"} typing…` : "";
    const last = room.last_seq;
    const seenBy = last > 0 ? store.seenBy(room, last) : [];
    $("seen").textContent = seenBy.length ? `Seen by ${listOfNames(seenBy)}` : "";
  }

  renderMembers(room) {
    const list = $("member-list");
    const names = room.members ? [...room.members].sort() : [...room.online].sort();
    const sig = names.map((n) => `${n}:${room.online.has(n)}`).join(",");
    if (list.dataset.sig === sig) return;
    list.dataset.sig = sig;
    list.replaceChildren(
      ...names.map((name) => {
        const online = room.online.has(name);
        return el(
          "li",
          { class: online ? "member online" : "member", data: { user: name, online: String(online) } },
          el("span", { class: "dot", "aria-hidden": "true" }),
          el("span", { text: name }),
          el("span", { class: "visually-hidden", text: online ? " (online)" : " (offline)" }),
        );
      }),
    );
  }

  renderMessages(store, room) {
    const nodes = [];
    const keep = new Set();
    let prev;
    for (const m of store.messagesOf(room)) {
      const key = `m:${m.seq}`;
      const mine = m.from === store.me && !m.bot;
      const continued = continuesRun(prev, m);
      prev = m;
      const sig = `${m.rev}|${this.editing === m.seq}|${this.confirming === m.seq}|${continued}`;
      nodes.push(this.item(key, sig, () => messageItem(m, mine, this.editing === m.seq, this.confirming === m.seq, continued)));
      keep.add(key);
    }
    for (const p of store.pendingOf(room.id)) {
      if (p.state === "sent" && room.messages.has(p.seq)) continue;
      const key = `p:${p.client_msg_id}`;
      nodes.push(this.item(key, `${p.state}`, () => pendingItem(p, store.me)));
      keep.add(key);
    }
    for (const key of [...this.messageItems.keys()]) if (!keep.has(key)) this.messageItems.delete(key);
    reconcile($("messages"), nodes);
  }

  /// The element for `key`, rebuilt by `build` when its signature changed.
  item(key, sig, build) {
    const cached = this.messageItems.get(key);
    if (cached && cached.sig === sig) return cached.li;
    const li = build();
    if (cached) cached.li.replaceWith(li);
    this.messageItems.set(key, { li, sig });
    return li;
  }

  renderAnnouncement(store) {
    const m = store.lastLive;
    if (!m || m === this.announced) return;
    this.announced = m;
    const room = store.rooms.get(m.room);
    if (!room) return;
    const where = m.room === store.active ? "" : ` in ${displayName(room, store.me)}`;
    this.announce(`${m.from}${where}: ${m.body}`);
  }

  // --- message actions -----------------------------------------------------------------------

  messageAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const seq = Number(button.dataset.seq);
    switch (button.dataset.action) {
      case "edit":
        this.editing = seq;
        this.confirming = null;
        break;
      case "cancel-edit":
        return this.stopEditing(seq);
      case "delete":
        this.confirming = seq;
        this.editing = null;
        break;
      case "cancel-delete":
        this.confirming = null;
        this.render();
        return this.focusAction(seq, "delete");
      case "confirm-delete":
        this.confirming = null;
        this.actions.remove(seq).catch((err) => this.flash(err.message));
        this.focusComposer();
        break;
      case "retry":
        this.actions.retry(button.dataset.cmid);
        break;
      case "discard":
        this.actions.discard(button.dataset.cmid);
        this.focusComposer();
        break;
      default:
        return;
    }
    this.render();
  }

  stopEditing(seq) {
    this.editing = null;
    this.render();
    this.focusAction(seq, "edit");
  }

  focusAction(seq, action) {
    const button = $("messages").querySelector(`li[data-seq="${seq}"] button[data-action="${action}"]`);
    if (button) button.focus();
  }

  async saveEdit(seq, body) {
    if (!body.trim()) return this.flash("A message cannot be empty; delete it instead.");
    try {
      await this.actions.edit(seq, body);
      this.stopEditing(seq);
    } catch (err) {
      this.flash(err.message);
    }
  }
}
