//! Output: JSON (with `--json`) or text for people, times, and text made safe for a terminal.
//!
//! JSON output is the protocol's own types (`Room`, `Message`, the ack of a post), serialised as
//! the server sends them, plus a few fields the CLI adds (e.g. `last_activity` in `rooms`).
//! One object per command; streams print one object per line.
//!
//! Text output never writes message text raw: a body may hold escape sequences that would
//! repaint or reprogram the reader's terminal, so [`sanitise`] replaces control characters.
//! Times are shown in UTC (the CLI has no time-zone database).

use std::io::{self, Write};

use serde::Serialize;
use switchboard_client::protocol::ws::Message;
use switchboard_client::protocol::Millis;

use super::error::CliError;

/// How a command prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// Prints `value` as one line of JSON.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), CliError> {
        let line = serde_json::to_string(value).expect("output values serialise");
        print_line(&line)
    }

    /// Prints `text` (one or more lines) for people.
    pub fn text(&self, text: &str) -> Result<(), CliError> {
        print_line(text)
    }
}

/// Writes `line` and a newline to stdout and flushes it (streams must not sit in a buffer).
pub fn print_line(line: &str) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|err| match err.kind() {
            io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Stdout(err),
        })
}

/// A notice for people on stderr (reconnecting, ...), prefixed like errors.
pub fn notice(text: &str) {
    eprintln!("switchboard: {text}");
}

/// One message as a line: `#42 2025-11-22 10:13:20 alice: hello`.
pub fn message_line(message: &Message) -> String {
    let body = if message.deleted {
        "(deleted)".to_owned()
    } else if message.edited_ts.is_some() {
        format!("{} (edited)", sanitise(&message.body))
    } else {
        sanitise(&message.body)
    };
    format!(
        "#{} {} {}: {body}",
        message.seq,
        utc(message.ts),
        author(message)
    )
}

/// A message and, one line each below it, its attachments:
/// `    attachment: report.pdf (12.5 KiB, application/pdf) id 3f2a…`.
pub fn message_lines(message: &Message) -> String {
    let mut out = message_line(message);
    for a in &message.attachments {
        out.push_str(&format!(
            "\n    attachment: {} ({}, {}) id {}",
            sanitise(&a.name),
            human_size(a.size),
            sanitise(&a.content_type),
            sanitise(&a.id)
        ));
    }
    out
}

/// A size for people: bytes up to 1 KiB, then KiB, MiB, GiB with one decimal.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Left-aligned columns (right-aligned where `right`), separated by two spaces.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], right: &[bool; N]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let pad = " ".repeat(widths[i] - cell.chars().count());
                if right[i] {
                    format!("{pad}{cell}")
                } else if i + 1 == N {
                    cell.to_string()
                } else {
                    format!("{cell}{pad}")
                }
            })
            .collect();
        padded.join("  ")
    };
    let mut lines = vec![line(header)];
    lines.extend(
        rows.iter()
            .map(|row| line(row.each_ref().map(String::as_str))),
    );
    lines.join("\n")
}

/// The author as printed: the username, or `name [bot]` for a bot's message (server API).
pub fn author(message: &Message) -> String {
    if message.bot {
        format!("{} [bot]", sanitise(&message.from))
    } else {
        sanitise(&message.from)
    }
}

/// `text` with every control character replaced, so it cannot move the cursor, clear the
/// screen or change the terminal's settings: a newline becomes `↵`, a tab a space, anything
/// else (ESC, CR, BEL, DEL, C1 controls) `�`. The result is one line.
pub fn sanitise(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => '↵',
            '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(ms: Millis) -> String {
    let (date, (h, m, s)) = split(ms);
    format!("{date} {h:02}:{m:02}:{s:02}")
}

/// `HH:MM` in UTC.
pub fn clock(ms: Millis) -> String {
    let (_, (h, m, _)) = split(ms);
    format!("{h:02}:{m:02}")
}

/// The civil date (`YYYY-MM-DD`) and time of day of `ms` since the epoch, in UTC.
fn split(ms: Millis) -> (String, (i64, i64, i64)) {
    let secs = ms.div_euclid(1000);
    let (days, secs_of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, mo, d) = civil_from_days(days);
    let time = (
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60,
    );
    (format!("{y:04}-{mo:02}-{d:02}"), time)
}

/// Year, month, day of the day `days` after 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, exact for every `i64` day a message can have).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_763_780_000_000), "2025-11-22 02:53:20");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
        assert_eq!(clock(1_763_780_000_000), "02:53");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(
            sanitise("a\u{1b}[2Jb\nc\td\r\u{7f}\u{9b}"),
            "a\u{FFFD}[2Jb↵c d\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(sanitise("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn a_message_is_one_line() {
        let mut message = Message {
            room: "r".into(),
            seq: 7,
            from: "bob".into(),
            body: "two\nlines".into(),
            ts: 0,
            client_msg_id: None,
            edited_ts: None,
            deleted: false,
            bot: false,
            attachments: Vec::new(),
        };
        assert_eq!(
            message_line(&message),
            "#7 1970-01-01 00:00:00 bob: two↵lines"
        );
        message.edited_ts = Some(1);
        assert!(message_line(&message).ends_with("two↵lines (edited)"));
        message.bot = true;
        assert!(message_line(&message).contains(" bob [bot]: "));
        message.deleted = true;
        assert!(message_line(&message).ends_with("bob [bot]: (deleted)"));
        message.deleted = false;
        message.attachments = vec![switchboard_client::protocol::ws::AttachmentInfo {
            id: "ab12".into(),
            name: "re\u{1b}port.pdf".into(),
            size: 12_800,
            content_type: "application/pdf".into(),
            url: "/v1/rooms/r/attachments/ab12".into(),
            thumbnail_url: None,
        }];
        let lines = message_lines(&message);
        assert_eq!(
            lines.lines().nth(1),
            Some("    attachment: re\u{FFFD}port.pdf (12.5 KiB, application/pdf) id ab12")
        );
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
