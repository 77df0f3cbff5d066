//! Secrets known by what surrounds them: the value inside a matched
//! `password=...`, `scheme://user:password@`, `AccountKey=...`,
//! `"private_key_id": "..."` or `aws_secret_access_key ... <40 chars>`.

use std::sync::LazyLock;

use base64::Engine as _;
use regex_automata::{meta::Regex, Anchored, Input};

/// Values that stand for a secret without being one (templates, masks).
fn placeholder(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    v.starts_with(['$', '{', '%', '/', '<'])
        || v.bytes()
            .all(|b| matches!(b, b'*' | b'x' | b'X' | b'.' | b'#'))
        || [
            "true",
            "false",
            "null",
            "none",
            "nil",
            "undefined",
            "redacted",
            "hidden",
        ]
        .contains(&lower.as_str())
}

/// Whether a URL scheme ends at `at` (where `://` starts): a letter, then 1
/// to 15 letters, digits, `+`, `.` or `-` (`postgres`, `git+ssh`).
pub fn scheme_before(text: &str, at: usize) -> bool {
    let scheme_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-');
    text.as_bytes()[..at]
        .iter()
        .rev()
        .take(16)
        .take_while(|b| scheme_char(b))
        .enumerate()
        .any(|(i, b)| i >= 1 && b.is_ascii_alphabetic())
}

/// The span (relative to `s`) of the password in a matched URL userinfo
/// (`scheme://user:password@`), Oracle-style `user/password@`, or
/// `key=value` pair.
pub fn password(s: &str) -> Option<(usize, usize)> {
    let (start, end) = if let Some(scheme_end) = s.find("://") {
        let colon = scheme_end + 3 + s[scheme_end + 3..].find(':')?;
        (colon + 1, s.rfind('@')?)
    } else if let Some(eq) = s.find('=') {
        let v = &s[eq + 1..];
        let v = v.trim_end_matches(['.', ',', ')', ']']);
        (eq + 1, eq + 1 + v.len())
    } else {
        // thin:user/password@
        let slash = s.find('/')?;
        (slash + 1, s.rfind('@')?)
    };
    let v = s.get(start..end)?;
    (v.len() >= 3 && !placeholder(v) && !v.contains(['<', '>'])).then_some((start, end))
}

/// The span (relative to `s`) of the value in a matched `key: value` or
/// `key = "value"` pair: after the first `:` or `=`, without spaces and
/// quotes. Unquoted (`quoted` false), it must hold a digit or a symbol, so
/// that "password: reset" is not one.
pub fn password_pair(s: &str, quoted: bool) -> Option<(usize, usize)> {
    let sep = s.find([':', '='])?;
    let rest = &s[sep + 1..];
    let start = sep + 1 + (rest.len() - rest.trim_start_matches([' ', '\t', '"', '\'']).len());
    // Quoted, the value ends at its closing quote (a final `.` is part of
    // it); unquoted, sentence punctuation after it is not.
    let end = if quoted {
        s.len() - 1
    } else {
        s.trim_end_matches(['"', '\'', '.', ')']).len()
    };
    let v = s.get(start..end)?;
    let strong = quoted
        || v.bytes()
            .any(|b| b.is_ascii_digit() || b.is_ascii_punctuation());
    (v.len() >= 3 && strong && !placeholder(v) && !v.contains(['<', '>'])).then_some((start, end))
}

/// What follows the first words of the password forms whose value lies
/// further on (detect.rs, `Kind::Password` forms 5 to 7), in their order:
/// a sentence that gives the password, the password after "temporary
/// password", a MySQL command line's `-p<password>`.
static PASSWORD_AFTER: LazyLock<[Option<Regex>; 3]> = LazyLock::new(|| {
    [
        r#"[^\n:=]{0,60}?[ \t](?i:is|ist|lautet|est|es|é|was|war)[ \t]+[^\s"'<>]{6,64}"#,
        r#"[ \t]+[^\s"'<>]{6,64}"#,
        r#"[^\n]{0,120}?[ \t]-p[^\s"'<>]{3,128}"#,
    ]
    .map(|p| Regex::new(p).ok())
});

/// The span (in `text`) of the password of form `n` (0 to 2, see
/// [`PASSWORD_AFTER`]) whose first words were matched at `start..end`.
pub fn password_after(text: &str, start: usize, end: usize, n: usize) -> Option<(usize, usize)> {
    let re = PASSWORD_AFTER.get(n)?.as_ref()?;
    let m = re.find(Input::new(text).range(end..).anchored(Anchored::Yes))?;
    let s = &text[start..m.end()];
    let (a, z) = if n == 2 {
        mysql_password(s)?
    } else {
        prose_password(s)?
    };
    Some((start + a, start + z))
}

/// The span (relative to `s`) of the password a sentence gives ("my
/// password is ...", "a temporary password ..."): its last word, without
/// a trailing `,`, `;` or `)`. It must look like one: six characters or
/// more, a letter and a digit or a symbol ("the password is required" is
/// prose).
fn prose_password(s: &str) -> Option<(usize, usize)> {
    let start = s.rfind([' ', '\t'])? + 1;
    let end = s.trim_end_matches([',', ';', ')']).len();
    let v = s.get(start..end)?;
    let strong = v.chars().any(char::is_alphabetic)
        && v.bytes()
            .any(|b| b.is_ascii_digit() || b.is_ascii_punctuation());
    (v.chars().count() >= 6 && strong && !placeholder(v)).then_some((start, end))
}

/// The span (relative to `s`) of the password in a MySQL client command
/// line's `-p<password>` (the last `-p` of the match).
fn mysql_password(s: &str) -> Option<(usize, usize)> {
    let start = s.rfind(" -p").or_else(|| s.rfind("\t-p"))? + 3;
    let v = s.get(start..)?;
    (v.len() >= 3 && !placeholder(v)).then_some((start, s.len()))
}

/// The span of the secret in a matched cloud-secret pattern: after the
/// first `=`, inside the last quotes, after the last space or colon, or
/// all of it.
pub fn cloud_secret(s: &str) -> Option<(usize, usize)> {
    let s_trim = s.trim_end_matches('"');
    let (start, end) = if let Some(eq) = s_trim.find('=').filter(|&i| !s_trim[..i].contains('"')) {
        (eq + 1, s_trim.len())
    } else if let Some(q) = s_trim.rfind(['"', '\'', ' ', '\t', ':']) {
        (q + 1, s_trim.len())
    } else {
        (0, s_trim.len())
    };
    let start = start
        + (s_trim[start..].len()
            - s_trim[start..]
                .trim_start_matches([' ', '\t', '"', '\''])
                .len());
    let v = s.get(start..end)?;
    (v.len() >= 16 && !placeholder(v)).then_some((start, end))
}

/// A `Basic` credential whose base64 decodes to `user:password`; its
/// length without trailing sentence punctuation.
pub fn basic_auth(s: &str) -> Option<usize> {
    basic_auth_len(s)
}

/// Whether a key is a placeholder or a documentation example, not a
/// secret: eight or more `x`, `X`, `*` or `0` in a row
/// (`sk_live_XXXXXXXXXXXXXXXX`, `AKIAXXXXXXXXXXXXXXXX`), or AWS's own
/// example key ids (`AKIAIOSFODNN7EXAMPLE`).
pub fn key_placeholder(s: &str) -> bool {
    if s.ends_with("EXAMPLE") || s.contains("EXAMPLEKEY") {
        return true;
    }
    let mut run = 0;
    let mut last = 0u8;
    for c in s.bytes() {
        let filler = matches!(c, b'x' | b'X' | b'*' | b'0');
        run = if filler && (run == 0 || c == last) {
            run + 1
        } else if filler {
            1
        } else {
            0
        };
        last = c;
        if run >= 8 {
            return true;
        }
    }
    false
}

fn basic_auth_len(s: &str) -> Option<usize> {
    let t = s.trim_end_matches(['.', ',']);
    let token = t.split_whitespace().nth(1)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(token.trim_end_matches('='))
                .ok()
        })?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    (!user.is_empty() && !pass.is_empty() && !text.chars().any(char::is_control)).then_some(t.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str, f: fn(&str) -> Option<(usize, usize)>) -> Option<&str> {
        f(s).map(|(a, b)| &s[a..b])
    }

    #[test]
    fn values() {
        assert_eq!(value("postgres://app:S3cr3t!@", password), Some("S3cr3t!"));
        assert_eq!(value("password=hunter22", password), Some("hunter22"));
        assert_eq!(value("Pwd=Pa55w0rd", password), Some("Pa55w0rd"));
        assert_eq!(value("thin:scott/tiger@", password), Some("tiger"));
        assert_eq!(value("password=${DB_PASSWORD}", password), None);
        assert_eq!(value("password=true", password), None);
        assert_eq!(
            value(
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                cloud_secret
            ),
            Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        );
        assert_eq!(
            value(
                "\"private_key_id\": \"0123456789abcdef0123456789abcdef01234567\"",
                cloud_secret
            ),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(basic_auth("Basic YWxhZGRpbjpvcGVuc2VzYW1l."), Some(30));
        assert_eq!(basic_auth("basic configuration"), None);
    }

    #[test]
    fn url_schemes() {
        let at = |t: &str| scheme_before(t, t.find("://").unwrap());
        assert!(at("see postgres://app:S3cr3t!@db"));
        assert!(at("git+ssh://u:p4ss@h"));
        assert!(at("a1://"));
        // The scheme of the last 16 characters of a longer run.
        assert!(at("0123456789012345678901234567a0://"));
        // One character, no letter, or no scheme at all.
        assert!(!at("x://u:p4ss@h"));
        assert!(!at("12://u:p4ss@h"));
        assert!(!at("://u:p4ss@h"));
        assert!(!at("é1://u:p4ss@h"));
        assert!(!at("01234567890123456a://"));
    }
}
