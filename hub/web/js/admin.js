// The admin view: the accounts of this server (PROTOCOL.md `GET /v1/admin/users`), searched by
// username on the server and read one page at a time; an admin changes an account's e-mail
// address or deletes it. The page shows the way in to admins only, but the server decides: every
// request here is refused with 403 for anyone else, and the view shows that refusal.
// Account data goes into the page as text only (see dom.js).

import { el } from "./dom.js";
import { dateTime } from "./account.js";

const $ = (id) => document.getElementById(id);

/// Accounts per page ("Load more" reads the next one).
export const ADMIN_PAGE = 25;
/// The search waits this long after the last keystroke before it asks the server.
const SEARCH_DEBOUNCE_MS = 300;
/// What the server accepts as `q` (PROTOCOL.md): part of a username.
const QUERY_PATTERN = /^[a-z0-9_.-]{0,32}$/;

/// Readable texts for the answers an admin request can get; anything else uses `explain`.
const MESSAGES = {
  forbidden: "Only admins can manage users: the server refused (403 forbidden).",
  forbidden_target: "An admin account cannot be deleted here: demote it from the command line first.",
  email_taken: "Another account already uses that e-mail address.",
  user_not_found: "That account no longer exists.",
};

export class AdminView {
  /// `api`: the Api; `explain(err)`: a readable error; `onClose()`: back to the chat.
  constructor({ api, explain, onClose }) {
    this.api = api;
    this.explain = explain;
    this.onClose = onClose;
    this.users = []; // AdminUser, in the server's order (oldest first)
    this.cursor = null; // next_cursor of the last page read, null when none is left
    this.query = "";
    this.editing = null; // id of the account whose e-mail form is open
    this.draft = null; // the address typed in the open e-mail form, kept across a refusal
    this.confirming = null; // id of the account whose deletion awaits confirmation
    this.errors = new Map(); // account id -> error shown in its row
    /// Bumped by every new search and by reset(): an answer to an older one is dropped.
    this.generation = 0;
    this.searchTimer = null;
    this.bind();
  }

  bind() {
    $("admin-back").addEventListener("click", () => this.onClose());
    $("admin-q").addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search(), SEARCH_DEBOUNCE_MS);
    });
    $("admin-search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(this.searchTimer);
      this.search();
    });
    $("admin-more").addEventListener("click", () => this.loadMore());
    const list = $("user-list");
    list.addEventListener("click", (event) => this.rowAction(event));
    list.addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      this.saveEmail(form.dataset.user, form.elements.email.value.trim());
    });
    list.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !event.target.matches(".email-form input")) return;
      event.preventDefault();
      this.stopEditing(event.target.form.dataset.user);
    });
  }

  isOpen() {
    return !$("admin-view").hidden;
  }

  /// Shows the view (the chat is hidden meanwhile) and reads the first page.
  show() {
    $("chat-view").hidden = true;
    $("admin-view").hidden = false;
    $("admin-q").focus();
    this.search();
  }

  hide() {
    clearTimeout(this.searchTimer);
    $("admin-view").hidden = true;
  }

  /// Forgets everything shown (the session ended).
  reset() {
    this.hide();
    this.generation++;
    this.users = [];
    this.cursor = null;
    this.editing = null;
    this.draft = null;
    this.confirming = null;
    this.errors.clear();
    $("admin-q").value = "";
    $("admin-error").textContent = "";
    $("admin-status").textContent = "";
    $("admin-more").hidden = true;
    $("user-list").replaceChildren();
  }

  /// Reads the first page for the text in the search box.
  async search() {
    const query = $("admin-q").value.trim().toLowerCase();
    if (!QUERY_PATTERN.test(query)) {
      this.generation++;
      $("admin-error").textContent = "Search by part of a username: up to 32 of a–z, 0–9, _ . -";
      return;
    }
    this.query = query;
    this.users = [];
    this.cursor = null;
    this.editing = null;
    this.confirming = null;
    this.errors.clear();
    await this.fetchPage(++this.generation);
  }

  async loadMore() {
    if (this.cursor === null) return;
    await this.fetchPage(this.generation);
  }

  /// Reads the page after `this.cursor` and appends it, unless a newer search started.
  async fetchPage(generation) {
    $("admin-error").textContent = "";
    $("admin-status").textContent = "Loading users…";
    const more = $("admin-more");
    more.disabled = true;
    try {
      const page = await this.api.adminUsers({ q: this.query, cursor: this.cursor, limit: ADMIN_PAGE });
      if (generation !== this.generation) return;
      this.users.push(...page.users);
      this.cursor = page.next_cursor ?? null;
      this.render();
      $("admin-status").textContent = this.summary();
    } catch (err) {
      if (generation !== this.generation) return;
      $("admin-status").textContent = "";
      $("admin-error").textContent = `Cannot list users: ${this.describe(err)}`;
    } finally {
      more.disabled = false;
    }
  }

  summary() {
    const n = this.users.length;
    const matching = this.query ? ` matching “${this.query}”` : "";
    if (n === 0) return `No users${matching}.`;
    return `${n} user${n === 1 ? "" : "s"}${matching}${this.cursor === null ? "" : " so far"}.`;
  }

  describe(err) {
    return MESSAGES[err && err.code] || this.explain(err);
  }

  render() {
    $("user-list").replaceChildren(...this.users.map((u) => this.row(u)));
    $("admin-more").hidden = this.cursor === null;
  }

  /// Rebuilds the row of account `id`; `focus`: a selector inside it to focus afterwards.
  renderRow(id, focus) {
    const old = $("user-list").querySelector(`li[data-user="${CSS.escape(id)}"]`);
    const user = this.users.find((u) => u.id === id);
    if (!old || !user) return;
    const row = this.row(user);
    old.replaceWith(row);
    if (focus) {
      const target = row.querySelector(focus);
      if (target) target.focus();
    }
  }

  row(u) {
    const editing = this.editing === u.id;
    const confirming = this.confirming === u.id;
    const error = this.errors.get(u.id) || "";
    const errorId = `user-error-${u.id}`;
    const li = el(
      "li",
      { class: "user-row", data: { user: u.id, username: u.username, role: u.role } },
      el(
        "div",
        { class: "user-main" },
        el("span", { class: "username", text: u.username }),
        el("span", { class: `tag role role-${u.role}`, text: u.role }),
      ),
      el(
        "dl",
        { class: "user-facts" },
        fact("E-mail", el("span", { class: "email", text: u.email })),
        fact("Created", dateTime(u.created_ts)),
        fact("Last login", u.last_login_ts ? dateTime(u.last_login_ts) : "never"),
      ),
    );
    const data = { user: u.id };
    if (editing) {
      const inputId = `email-${u.id}`;
      const input = el("input", {
        id: inputId,
        name: "email",
        type: "email",
        autocomplete: "off",
        required: true,
        "aria-describedby": errorId,
      });
      input.value = this.draft ?? u.email;
      li.append(
        el(
          "form",
          { class: "email-form", data, novalidate: true },
          el("label", { for: inputId, text: `New e-mail address of ${u.username}` }),
          input,
          el("button", { type: "submit", text: "Save" }),
          el("button", { type: "button", data: { ...data, action: "cancel-email" }, text: "Cancel" }),
        ),
      );
    } else if (confirming) {
      li.append(
        el(
          "div",
          { class: "actions", role: "group", "aria-label": `Confirm deleting ${u.username}` },
          el("span", { text: `Delete ${u.username}? Their sessions end at once.` }),
          el("button", { type: "button", class: "danger", data: { ...data, action: "confirm-delete" }, text: `Delete ${u.username}` }),
          el("button", { type: "button", data: { ...data, action: "cancel-delete" }, text: "Keep" }),
        ),
      );
    } else {
      li.append(
        el(
          "div",
          { class: "actions" },
          el("button", { type: "button", data: { ...data, action: "edit-email" }, "aria-label": `Change e-mail of ${u.username}`, text: "Change e-mail" }),
          el("button", { type: "button", class: "danger", data: { ...data, action: "delete" }, "aria-label": `Delete ${u.username}`, text: "Delete" }),
        ),
      );
    }
    li.append(el("p", { id: errorId, class: "form-error", role: "alert", text: error }));
    return li;
  }

  rowAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.dataset.user;
    this.errors.delete(id);
    switch (button.dataset.action) {
      case "edit-email":
        this.editing = id;
        this.draft = null;
        this.confirming = null;
        return this.renderRow(id, "input");
      case "cancel-email":
        return this.stopEditing(id);
      case "delete":
        this.confirming = id;
        this.editing = null;
        return this.renderRow(id, "button[data-action=confirm-delete]");
      case "cancel-delete":
        this.confirming = null;
        return this.renderRow(id, "button[data-action=delete]");
      case "confirm-delete":
        return this.remove(id, button);
      default:
        return;
    }
  }

  stopEditing(id) {
    this.editing = null;
    this.draft = null;
    this.errors.delete(id);
    this.renderRow(id, "button[data-action=edit-email]");
  }

  async saveEmail(id, email) {
    const user = this.users.find((u) => u.id === id);
    if (!user) return;
    this.draft = email;
    if (!email) return this.rowError(id, "Enter an e-mail address.", "input");
    try {
      const updated = await this.api.adminSetEmail(id, email);
      Object.assign(user, updated);
      this.editing = null;
      this.draft = null;
      this.errors.delete(id);
      this.renderRow(id, "button[data-action=edit-email]");
      $("admin-status").textContent = `The e-mail address of ${user.username} is now ${updated.email}.`;
    } catch (err) {
      this.rowError(id, this.describe(err), "input");
    }
  }

  async remove(id, button) {
    const user = this.users.find((u) => u.id === id);
    if (!user) return;
    button.disabled = true;
    try {
      await this.api.adminDeleteUser(id);
    } catch (err) {
      this.confirming = null;
      return this.rowError(id, this.describe(err), "button[data-action=delete]");
    }
    const index = this.users.indexOf(user);
    this.users.splice(index, 1);
    this.confirming = null;
    this.errors.delete(id);
    this.render();
    $("admin-status").textContent = `${user.username} was deleted.`;
    const next = $("user-list").children[index] || $("user-list").lastElementChild;
    (next ? next.querySelector("button") : $("admin-q")).focus();
  }

  rowError(id, message, focus) {
    this.errors.set(id, message);
    this.renderRow(id, focus);
  }
}

/// One term of an account's facts: `<div><dt>term</dt><dd>value</dd></div>`.
function fact(term, value) {
  return el("div", {}, el("dt", { text: term }), el("dd", {}, value));
}
