//! `Authorization: Bearer <token>` credentials, parsed once for the hub and the auth node.
//!
//! The grammar is RFC 7235 §2.1 `credentials = auth-scheme 1*SP token68` with the `b64token` of
//! RFC 6750 §2.1: the scheme is matched case-insensitively (`Bearer`, `bearer`, `BEARER`), one or
//! more spaces separate it from the token, and the token is one or more of
//! `A-Z a-z 0-9 - . _ ~ + /` followed by any number of `=`. Anything else (another scheme, an
//! empty token, a token with spaces or other characters) is not a bearer credential.

/// The token of an `Authorization` header value, or `None` when the value is not a bearer
/// credential (see the module docs). Whitespace after the token is ignored.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ').trim_end();
    is_b64token(token).then_some(token)
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_values() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("BeArEr abc", Some("abc")),
            ("Bearer   abc", Some("abc")),
            ("Bearer abc  ", Some("abc")),
            ("Bearer eyJ0.eyJz-_.c2ln", Some("eyJ0.eyJz-_.c2ln")),
            ("Bearer a+b/c~==", Some("a+b/c~==")),
            // No token, or an empty one.
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer    ", None),
            ("Bearer ==", None),
            // Not one token68.
            ("Bearer a b", None),
            ("Bearer a=b", None),
            ("Bearer a,b", None),
            ("Bearer \"abc\"", None),
            ("Bearer\tabc", None),
            // Another scheme, or none.
            ("Basic abc", None),
            ("Bearerabc abc", None),
            ("abc", None),
            ("", None),
            (" Bearer abc", None),
        ];
        for (value, want) in cases {
            assert_eq!(bearer_token(value), *want, "{value:?}");
        }
    }
}
