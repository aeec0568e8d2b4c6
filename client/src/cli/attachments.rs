//! `send ROOM [TEXT] --attach FILE...` and `download ROOM ATTACHMENT_ID [-o PATH]`.
//!
//! A file to attach is read whole before its upload (the hub takes at most
//! `--max-attachment-bytes`, 10 MiB by default; a file over [`MAX_FILE_BYTES`] is refused
//! before it is read). A download streams to its file chunk by chunk, and a download that
//! fails midway removes the partial file it created.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;
use switchboard_client::protocol::limits::MAX_ATTACHMENTS_PER_MESSAGE;
use switchboard_client::protocol::ws::AttachmentInfo;
use switchboard_client::reconnect::new_client_msg_id;
use switchboard_client::{Api, ClientError};
use tokio::io::AsyncWriteExt;

use super::error::CliError;
use super::output::{human_size, sanitise};
use super::session::Session;
use super::Context;

/// The largest file `send --attach` reads (the hub's own bound is usually far lower).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024 * 1024;

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::File {
        path: path.to_owned(),
        source,
    }
}

/// Uploads `files` to `room`, then sends `text` (may be empty) carrying them.
pub async fn send(
    ctx: &Context,
    room: &str,
    text: &str,
    files: &[PathBuf],
) -> Result<(), CliError> {
    if files.len() > MAX_ATTACHMENTS_PER_MESSAGE {
        return Err(CliError::Usage(format!(
            "a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"
        )));
    }
    let mut session = Session::open(ctx)?;
    let room = session.resolve_room(room).await?;
    let id = room.id.as_str();
    let mut uploaded: Vec<AttachmentInfo> = Vec::with_capacity(files.len());
    for path in files {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(file_error(path))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(CliError::Usage(format!(
                "{} is over {} bytes",
                path.display(),
                MAX_FILE_BYTES
            )));
        }
        let bytes = bytes::Bytes::from(tokio::fs::read(path).await.map_err(file_error(path))?);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let name = name.as_str();
        let info = session
            .call(|api| {
                let bytes = bytes.clone();
                async move { api.upload_attachment(id, name, bytes).await }
            })
            .await?;
        uploaded.push(info);
    }
    let ids: Vec<String> = uploaded.iter().map(|a| a.id.clone()).collect();
    let ids = ids.as_slice();
    let key = new_client_msg_id();
    let key = key.as_str();
    let ack = session
        .call(|api| async move { api.post_message_with(id, text, Some(key), ids).await })
        .await?;
    if ctx.out.json {
        return ctx.out.json(&json!({
            "room": ack.room,
            "seq": ack.seq,
            "ts": ack.ts,
            "client_msg_id": ack.client_msg_id,
            "attachments": uploaded,
        }));
    }
    let files = match uploaded.len() {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    };
    ctx.out.text(&format!(
        "sent #{} to {} with {files}",
        ack.seq,
        sanitise(&room.name)
    ))
}

/// Saves attachment `attachment` of `room` to `output` (see the module docs).
pub async fn download(
    ctx: &Context,
    room: &str,
    attachment: &str,
    output: Option<&Path>,
) -> Result<(), CliError> {
    if attachment.is_empty() || attachment.chars().all(|c| c == '.') {
        return Err(CliError::Usage(format!(
            "{attachment:?} is not an attachment id"
        )));
    }
    let response = match Session::try_open(ctx)? {
        Some(mut session) => {
            let room = session.resolve_room(room).await?;
            let id = room.id.as_str();
            session
                .call(|api| async move { api.download_attachment(id, attachment).await })
                .await?
        }
        None => {
            Api::new(&ctx.server)
                .download_attachment(room, attachment)
                .await?
        }
    };
    let to_stdout = output.is_some_and(|p| p == Path::new("-"));
    let path = match output {
        Some(path) => path.to_owned(),
        None => PathBuf::from(
            response
                .headers()
                .get(reqwest::header::CONTENT_DISPOSITION)
                .and_then(|v| v.to_str().ok())
                .and_then(disposition_name)
                .unwrap_or_else(|| attachment.to_owned()),
        ),
    };
    if to_stdout {
        // The file is the output: nothing else is printed.
        copy(response, &mut Stdout).await?;
        return Ok(());
    }
    // A name the server gave never overwrites a file; -o PATH does, as asked.
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true);
    if output.is_some() {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(&path).await.map_err(file_error(&path))?;
    let mut sink = FileSink { file, path: &path };
    let size = match copy(response, &mut sink).await {
        Ok(size) => size,
        Err(err) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(err);
        }
    };
    if ctx.out.json {
        return ctx.out.json(&json!({ "path": path, "size": size }));
    }
    ctx.out.text(&format!(
        "saved {} ({})",
        sanitise(&path.display().to_string()),
        human_size(size)
    ))
}

/// Where a download goes.
trait Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CliError>;
    async fn finish(&mut self) -> Result<(), CliError>;
}

struct Stdout;

impl Sink for Stdout {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CliError> {
        std::io::stdout()
            .lock()
            .write_all(chunk)
            .map_err(stdout_error)
    }

    async fn finish(&mut self) -> Result<(), CliError> {
        std::io::stdout().lock().flush().map_err(stdout_error)
    }
}

fn stdout_error(err: std::io::Error) -> CliError {
    match err.kind() {
        std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
        _ => CliError::Stdout(err),
    }
}

struct FileSink<'a> {
    file: tokio::fs::File,
    path: &'a Path,
}

impl Sink for FileSink<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CliError> {
        self.file
            .write_all(chunk)
            .await
            .map_err(file_error(self.path))
    }

    async fn finish(&mut self) -> Result<(), CliError> {
        self.file.flush().await.map_err(file_error(self.path))?;
        self.file.sync_all().await.map_err(file_error(self.path))
    }
}

/// Streams the answer's body into `sink`; returns its size.
async fn copy(mut response: reqwest::Response, sink: &mut impl Sink) -> Result<u64, CliError> {
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(ClientError::from)? {
        sink.write(&chunk).await?;
        size += chunk.len() as u64;
    }
    sink.finish().await?;
    Ok(size)
}

/// The file name of a `Content-Disposition` (`filename*=UTF-8''...` preferred), made safe for
/// a path in the current directory: its last component, no control characters, not a dot
/// name.
fn disposition_name(header: &str) -> Option<String> {
    let mut plain = None;
    let mut exact = None;
    for param in header.split(';') {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                exact = value
                    .trim()
                    .strip_prefix("UTF-8''")
                    .or_else(|| value.trim().strip_prefix("utf-8''"))
                    .and_then(percent_decode);
            }
            "filename" => plain = Some(value.trim().trim_matches('"').to_owned()),
            _ => {}
        }
    }
    let name = exact.or(plain)?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    (!clean.is_empty() && !clean.chars().all(|c| c == '.')).then(|| clean.to_owned())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::disposition_name;

    #[test]
    fn download_names_stay_in_the_directory() {
        let name = |h: &str| disposition_name(h);
        assert_eq!(
            name("attachment; filename=\"a.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt").as_deref(),
            Some("été.txt")
        );
        assert_eq!(
            name("attachment; filename=\"b.txt\"").as_deref(),
            Some("b.txt")
        );
        assert_eq!(
            name("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd").as_deref(),
            Some("passwd")
        );
        assert_eq!(name("attachment; filename=\"..\""), None);
        assert_eq!(name("inline"), None);
    }
}
