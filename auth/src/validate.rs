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

/// Longest local part (before the `@`) of an e-mail address, in bytes (RFC 5321).
pub const MAX_EMAIL_LOCAL_BYTES: usize = 64;
/// Longest label of an e-mail domain, in bytes (RFC 1035).
const MAX_LABEL_BYTES: usize = 63;
/// Characters allowed in the local part besides ASCII letters and digits (WHATWG).
const LOCAL_SPECIALS: &[u8] = b".!#$%&'*+/=?^_`{|}~-";

/// A valid e-mail address as the WHATWG HTML standard defines it for `<input type=email>`, plus
/// length bounds and a dot in the domain (documented in PROTOCOL.md, registration):
/// - `local@domain`, with exactly one `@`;
/// - the local part: 1 to [`MAX_EMAIL_LOCAL_BYTES`] of `a-z A-Z 0-9` and
///   ``.!#$%&'*+/=?^_`{|}~-``;
/// - the domain: at least two labels separated by dots, each 1 to 63 of `a-z A-Z 0-9 -`, not
///   starting or ending with `-`;
/// - at most [`MAX_EMAIL_BYTES`] in all.
///
/// So no spaces, quotes, angle brackets or non-ASCII characters anywhere.
pub(crate) fn email(email: &str) -> Result<(), String> {
    let bad = || Err("email must look like name@example.com".to_owned());
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!("email must be at most {MAX_EMAIL_BYTES} bytes"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad();
    };
    let local_ok = (1..=MAX_EMAIL_LOCAL_BYTES).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    if !local_ok || labels.len() < 2 || !labels.iter().all(|label| domain_label(label)) {
        return bad();
    }
    Ok(())
}

/// `[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?`
fn domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= MAX_LABEL_BYTES
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
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
        let label63 = "d".repeat(63);
        let long_ok = format!(
            "{}@{}.{}.{}.com",
            "l".repeat(64),
            label63,
            label63,
            "e".repeat(57)
        );
        assert_eq!(long_ok.len(), MAX_EMAIL_BYTES);
        check(
            email,
            &[
                "x@y.z",
                "alice+tag@mail.example.com",
                "A.B-c_d@EXAMPLE.org",
                "!#$%&'*+/=?^_`{|}~-@x.io",
                "a@b-c.d1",
                "a@1.2",
                &format!("a@{label63}.com"),
                &long_ok,
            ],
            &[
                "",
                "x",
                "x@y",
                "@y.z",
                "x@.z",
                "x@y.",
                "x@y..z",
                "x @y.z",
                "x@y@z.w",
                "<script>alert(1)</script>@x.yz",
                "a@-.-",
                "a@-b.c",
                "a@b-.c",
                "a@b_c.d",
                "\"quoted\"@x.yz",
                "a(b)@x.yz",
                "a,b@x.yz",
                "a;b@x.yz",
                "a\\b@x.yz",
                "ä@x.yz",
                "a@bü.com",
                "a@x.yz\n",
                "a\u{0}@x.yz",
                &format!("a@{label63}d.com"),
                &format!("{}@x.yz", "l".repeat(65)),
                &format!("{long_ok}m"),
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
