// The account menu: who is logged in, the way into the admin view (admins only), and the
// account's sessions (PROTOCOL.md `GET /v1/auth/sessions`), each of which can be ended from here.
// Session data (user agents) goes into the page as text only (see dom.js).

import { el } from "./dom.js";
import { avatarChanged } from "./messages.js";

const $ = (id) => document.getElementById(id);

/// Browsers recognised in a User-Agent, most specific first (Edge and Opera also say "Chrome",
/// Chrome also says "Safari").
const BROWSERS = [
  ["Edg/", "Edge"],
  ["OPR/", "Opera"],
  ["Firefox/", "Firefox"],
  ["HeadlessChrome/", "Headless Chrome"],
  ["Chromium/", "Chromium"],
  ["Chrome/", "Chrome"],
  ["Safari/", "Safari"],
];
/// Systems recognised in a User-Agent, most specific first (Android also says "Linux").
const SYSTEMS = [
  ["Android", "Android"],
  ["iPhone", "iOS"],
  ["iPad", "iPadOS"],
  ["CrOS", "ChromeOS"],
  ["Windows", "Windows"],
  ["Mac OS X", "macOS"],
  ["Linux", "Linux"],
];

/// A short name for a login's User-Agent, e.g. "Firefox on Linux"; the full text is shown too.
export function describeAgent(agent) {
  if (!agent) return "Unknown device";
  const browser = BROWSERS.find(([token]) => agent.includes(token));
  const system = SYSTEMS.find(([token]) => agent.includes(token));
  if (browser && system) return `${browser[1]} on ${system[1]}`;
  if (browser) return browser[1];
  if (system) return `A browser on ${system[1]}`;
  return agent.split(/[\s/]/)[0] || "Unknown device";
}

/// A `<time>` with the date and time of `ts` (milliseconds since the epoch).
export function dateTime(ts) {
  const date = new Date(ts);
  return el("time", {
    datetime: date.toISOString(),
    text: date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }),
  });
}

/// The account menu under the top bar. Closed, it holds nothing: the sessions are read each time
/// it opens, and again after one is ended.
export class AccountPanel {
  /// `api`: the Api; `explain(err)`: a readable error; `openAdmin()`: shows the admin view.
  constructor({ api, explain, openAdmin }) {
    this.api = api;
    this.explain = explain;
    this.openAdmin = openAdmin;
    /// Bumped by every load and by reset(): an answer to an older load is dropped.
    this.generation = 0;
    this.bind();
  }

  bind() {
    $("account-toggle").addEventListener("click", () => (this.isOpen() ? this.close(true) : this.open()));
    $("account-close").addEventListener("click", () => this.close(true));
    $("account-panel").addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close(true);
      }
    });
    $("open-admin").addEventListener("click", () => {
      this.close(false);
      this.openAdmin();
    });
    $("end-others").addEventListener("click", () => this.endOthers());
    $("avatar-file").addEventListener("change", () => this.uploadAvatar());
    $("avatar-clear").addEventListener("click", () => this.clearAvatar());
    $("session-list").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-session]");
      if (button) this.end(button.dataset.session, button);
    });
  }

  /// Shows who is logged in, and the admin entry to admins only.
  setUser(user) {
    const role = (user && user.role) || "user";
    $("me").textContent = user ? user.username : "";
    $("account-who").textContent = user ? `Logged in as ${user.username}${role === "admin" ? " (admin)" : ""}.` : "";
    $("admin-entry").hidden = role !== "admin";
  }

  isOpen() {
    return !$("account-panel").hidden;
  }

  open() {
    // The role may have changed at the last refresh.
    this.setUser(this.api.user);
    $("account-panel").hidden = false;
    $("account-toggle").setAttribute("aria-expanded", "true");
    $("account-close").focus();
    this.showAvatar();
    this.load();
  }

  /// Shows the caller's current avatar (through the redirect) or, after a change, `url`.
  showAvatar(url) {
    const user = this.api.user;
    if (!user) return;
    $("my-avatar").src = url || `/v1/users/${encodeURIComponent(user.username)}/avatar?size=64`;
  }

  /// Uploads the chosen file as the avatar; the server's refusal (too large, not an image) is
  /// shown in the menu. The messages shown here get the new picture at once (other pages on
  /// their next load).
  async uploadAvatar() {
    const input = $("avatar-file");
    const file = input.files && input.files[0];
    if (!file) return;
    $("avatar-error").textContent = "";
    $("avatar-status").textContent = "Uploading…";
    try {
      const urls = await this.api.setAvatar(file);
      this.showAvatar(urls.small_url);
      avatarChanged(this.api.user.username);
      $("avatar-status").textContent = "Your picture is changed.";
    } catch (err) {
      $("avatar-status").textContent = "";
      $("avatar-error").textContent = `Cannot use this picture: ${this.explain(err)}`;
    } finally {
      input.value = "";
    }
  }

  /// Removes the uploaded avatar: the generated one is shown again.
  async clearAvatar() {
    $("avatar-error").textContent = "";
    try {
      await this.api.clearAvatar();
      const user = this.api.user;
      if (user) {
        this.showAvatar(`/v1/identicons/${encodeURIComponent(user.id)}?size=64`);
        avatarChanged(user.username);
      }
      $("avatar-status").textContent = "The generated picture is shown again.";
    } catch (err) {
      $("avatar-error").textContent = `Cannot remove your picture: ${this.explain(err)}`;
    }
  }

  /// Closes the menu; `returnFocus` puts the focus back on its toggle.
  close(returnFocus) {
    if (!this.isOpen()) return;
    $("account-panel").hidden = true;
    $("account-toggle").setAttribute("aria-expanded", "false");
    if (returnFocus) $("account-toggle").focus();
  }

  /// Forgets everything shown (the session ended).
  reset() {
    this.generation++;
    $("account-panel").hidden = true;
    $("account-toggle").setAttribute("aria-expanded", "false");
    $("session-list").replaceChildren();
    $("sessions-error").textContent = "";
    $("sessions-status").textContent = "";
    $("avatar-status").textContent = "";
    $("avatar-error").textContent = "";
    $("my-avatar").removeAttribute("src");
    this.setUser(null);
  }

  /// Reads the session list again and shows it; an error is shown in the menu. `keepError`:
  /// the error already shown stays (the list is read again after a refusal).
  async load(keepError = false) {
    const generation = ++this.generation;
    if (!keepError) $("sessions-error").textContent = "";
    $("sessions-status").textContent = "Loading sessions…";
    try {
      const sessions = await this.api.sessions();
      if (generation !== this.generation) return;
      this.render(sessions);
      $("sessions-status").textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}.`;
    } catch (err) {
      if (generation !== this.generation) return;
      $("sessions-status").textContent = "";
      $("sessions-error").textContent = `Cannot read your sessions: ${this.explain(err)}`;
    }
  }

  render(sessions) {
    $("session-list").replaceChildren(...sessions.map((s) => sessionItem(s)));
    $("end-others-row").hidden = !sessions.some((s) => !s.current);
  }

  /// Ends session `sid` (its sockets close, its tokens stop working), then reloads the list.
  async end(sid, button) {
    $("sessions-error").textContent = "";
    button.disabled = true;
    try {
      await this.api.endSession(sid);
    } catch (err) {
      // Most likely it ended meanwhile (404): the list is read again, the reason stays shown.
      $("sessions-error").textContent = `Cannot end that session: ${this.explain(err)}`;
      button.disabled = false;
      await this.load(true);
      return;
    }
    await this.load();
    $("account-close").focus();
  }

  /// Ends every session but this one, then reloads the list.
  async endOthers() {
    const button = $("end-others");
    $("sessions-error").textContent = "";
    button.disabled = true;
    try {
      await this.api.endOtherSessions();
    } catch (err) {
      $("sessions-error").textContent = `Cannot log out the other devices: ${this.explain(err)}`;
      return;
    } finally {
      button.disabled = false;
    }
    await this.load();
    $("account-close").focus();
  }
}

/// One session: its device, the full user agent, when it logged in and was last seen; "This
/// device" for the current one, an End button for the others.
function sessionItem(s) {
  const device = describeAgent(s.user_agent);
  return el(
    "li",
    { class: s.current ? "session current" : "session", data: { session: s.id, current: String(s.current) } },
    el(
      "div",
      { class: "session-device" },
      el("span", { class: "device", text: device }),
      s.current ? el("span", { class: "tag", text: "This device" }) : null,
    ),
    s.user_agent ? el("p", { class: "agent", text: s.user_agent }) : null,
    el("p", { class: "session-times" }, "Logged in ", dateTime(s.created_ts), " · last seen ", dateTime(s.last_seen_ts)),
    s.current
      ? null
      : el("button", {
          type: "button",
          class: "danger",
          data: { session: s.id },
          "aria-label": `End the session of ${device}, logged in ${new Date(s.created_ts).toLocaleString()}`,
          text: "End",
        }),
  );
}
