// Password reset by mail: the "forgot password" form (asks for a mail) and the "choose a new
// password" form opened by the mail's link (`/#reset=<token>`). The token is in the fragment, so
// it never reaches a server's logs; it is read once and removed from the address bar at once.

const $ = (id) => document.getElementById(id);

const RESET_PREFIX = "#reset=";

/// The cards of the auth view, by what is shown.
const CARDS = {
  login: ["login-card", "register-card"],
  forgot: ["forgot-card"],
  reset: ["reset-card"],
};

/// Takes the reset token from the address (and removes it from the address and the history
/// entry); null if there is none.
export function takeResetToken() {
  if (!location.hash.startsWith(RESET_PREFIX)) return null;
  const token = location.hash.slice(RESET_PREFIX.length);
  history.replaceState(null, "", location.pathname + location.search);
  return token || null;
}

/// A readable message for a failed confirm.
function explainReset(err) {
  if (err && err.status === 401) {
    return "This link has expired or was already used. Ask for a new one.";
  }
  if (err && err.status === 400 && err.code === "bad_request" && /token/.test(err.message)) {
    return "This link is not complete. Open the whole link from the mail, or ask for a new one.";
  }
  if (err && err.code === "rate_limited") return "Too many attempts; try again in a moment.";
  if (err && err.status === 400) return err.message;
  if (err instanceof TypeError) return "Cannot reach the server.";
  return (err && err.message) || "Something went wrong.";
}

/// The two forms. `api`: js/api.js's Api (its anonymous `call`); `onDone(notice)`: back to
/// the login form with a notice.
export class ResetForms {
  constructor(api, onDone) {
    this.api = api;
    this.onDone = onDone;
    this.token = null;
    $("forgot").addEventListener("click", () => this.showForgot());
    for (const button of document.querySelectorAll(".back-to-login")) {
      button.addEventListener("click", () => this.show("login"));
    }
    this.onSubmit("forgot-form", "forgot-error", async (form) => {
      const email = form.email.value.trim();
      if (!email) throw new Error("Enter the e-mail address of your account.");
      await this.api.call("POST", "/v1/auth/password/reset", { email }, null);
      // The same message whatever the address: the server says nothing more either.
      form.hidden = true;
      $("forgot-sent").hidden = false;
    });
    this.onSubmit("reset-form", "reset-error", async (form) => {
      const password = form.password.value;
      if (password.length < 8) throw new Error("The password must be at least 8 characters.");
      try {
        await this.api.call("POST", "/v1/auth/password/reset/confirm", { token: this.token, password }, null);
      } catch (err) {
        throw new Error(explainReset(err));
      }
      this.token = null;
      form.reset();
      this.onDone("Your password is changed. Log in with the new one.");
    });
  }

  onSubmit(formId, errorId, handler) {
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
        error.textContent = explainReset(err);
      } finally {
        button.disabled = false;
      }
    });
  }

  /// Shows one group of cards of the auth view.
  show(which) {
    for (const [name, ids] of Object.entries(CARDS)) {
      for (const id of ids) $(id).hidden = name !== which;
    }
  }

  showForgot() {
    const form = $("forgot-form");
    form.reset();
    form.hidden = false;
    $("forgot-error").textContent = "";
    $("forgot-sent").hidden = true;
    this.show("forgot");
    $("forgot-email").focus();
  }

  /// Shows the new-password form for `token`.
  showReset(token) {
    this.token = token;
    $("reset-form").reset();
    $("reset-error").textContent = "";
    this.show("reset");
    $("reset-password").focus();
  }
}
