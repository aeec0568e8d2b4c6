//! [`OutboxMailer`]: with no SMTP relay, each mail becomes a file `DATA_DIR/outbox/{id}.eml`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Mail, MailError, Mailer};

/// Name of the outbox directory inside the data directory.
pub const OUTBOX_DIR: &str = "outbox";

/// Writes each mail as `{id}.eml` (the id of its `Message-ID`, see [`Mail::id`]) in a private
/// directory: the exact RFC 5322 bytes an SMTP relay would receive, readable by any mail client.
///
/// **Invariants:** a file appears whole or not at all (written to a hidden temporary file in
/// the same directory, synced, then renamed over the final name), so a reader never sees half
/// a mail; a second delivery of the same mail replaces the file rather than adding one; the
/// directory is 0700 and every file 0600 (the mails hold addresses and reset links).
#[derive(Debug, Clone)]
pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    /// An outbox in `dir`, created (0700) if missing, tightened if looser (see
    /// [`crate::datadir::secure_dir`]). Blocking: call it at start or on the blocking pool.
    ///
    /// # Errors
    /// If the directory cannot be created or changed.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<OutboxMailer> {
        let dir = dir.into();
        crate::datadir::secure_dir(&dir)?;
        Ok(OutboxMailer { dir })
    }

    /// The directory the mails are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file `mail` is (or would be) written to.
    pub fn path_of(&self, mail: &Mail) -> PathBuf {
        self.dir.join(format!("{}.eml", mail.id()))
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let bytes = mail.formatted();
        let dir = self.dir.clone();
        let path = self.path_of(mail);
        let target = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // tempfile creates the file 0600 with a random hidden name in `dir`.
            let mut file = tempfile::Builder::new()
                .prefix(".")
                .suffix(".eml.tmp")
                .tempfile_in(&dir)?;
            file.write_all(&bytes)?;
            file.as_file().sync_all()?;
            file.persist(&target).map_err(|e| e.error)?;
            Ok(())
        })
        .await
        .map_err(|e| MailError::Outbox(std::io::Error::other(e)))??;
        tracing::info!(message_id = mail.message_id(), path = %path.display(), "mail written to the outbox");
        Ok(())
    }
}
