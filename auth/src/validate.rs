//! Registration rules. Each check returns the message of the 400 `bad_request` it causes.

use switchboard_protocol::limits::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

/// Shortest username, in characters.
pub const MIN_USERNAME_CHARS: usize = 3;
/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 32;
/// Longest e-mail address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// 3–32 characters of `[a-z0-9_.-]`.
pub(crate) fn username(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(MIN_USERNAME_CHARS..=MAX_USERNAME_CHARS).contains(&len) {
        return Err(format!(
            "username must be {MIN_USERNAME_CHARS} to {MAX_USERNAME_CHARS} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
    {
        return Err("username may contain only a-z, 0-9, '_', '.' and '-'".to_owned());
    }
    Ok(())
}

/// Looks like `local@domain.tld`: one `@`, a non-empty local part, a domain of non-empty
/// dot-separated labels (at least two), no whitespace or control characters.
pub(crate) fn email(email: &str) -> Result<(), String> {
    let bad = || Err("email must look like name@example.com".to_owned());
    if email.len() > MAX_EMAIL_BYTES || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if local.is_empty() || domain.contains('@') || labels.len() < 2 || labels.contains(&"") {
        return bad();
    }
    Ok(())
}

/// At least [`MIN_PASSWORD_CHARS`] characters and at most [`MAX_PASSWORD_BYTES`] bytes (which
/// bounds the cost of hashing).
pub(crate) fn password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: fn(&str) -> Result<(), String>, ok: &[&str], bad: &[&str]) {
        for s in ok {
            assert!(f(s).is_ok(), "{s:?} should pass");
        }
        for s in bad {
            assert!(f(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn usernames() {
        check(
            username,
            &["abc", "a.b-c_9", &"x".repeat(32)],
            &[
                "ab",
                &"x".repeat(33),
                "Alice",
                "al ice",
                "al@ce",
                "ålice",
                "",
            ],
        );
    }

    #[test]
    fn emails() {
        check(
            email,
            &["x@y.z", "alice+tag@mail.example.com"],
            &[
                "", "x", "x@y", "@y.z", "x@.z", "x@y.", "x@y..z", "x @y.z", "x@y@z.w",
            ],
        );
    }

    #[test]
    fn passwords() {
        check(
            password,
            &["12345678", "ünïcödé!", &"p".repeat(1024)],
            &["1234567", "", &"p".repeat(1025), &"é".repeat(513)],
        );
    }
}
