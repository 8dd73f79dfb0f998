//! Outgoing mail (sign-up and invitation links). The `Mailer` is the adapter a deployment
//! replaces; the local default writes each message as a file into `portal.mail_dir` when it is
//! configured, and otherwise prints it to the log, which is what a developer running Cardplane
//! on their laptop wants. Production deployments configure `mail_dir` (picked up by their mail
//! system) so that links, which are credentials, stay out of the log.

use std::path::PathBuf;

use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> std::io::Result<()>;
}

/// Mail as files (`<dir>/<time>-<uuid>.eml`), or in the log when no directory is configured.
pub struct LocalMailer {
    dir: Option<PathBuf>,
}

impl LocalMailer {
    pub fn new(dir: Option<PathBuf>) -> Self {
        LocalMailer { dir }
    }
}

#[async_trait]
impl Mailer for LocalMailer {
    async fn send(&self, mail: &Mail) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            tracing::info!(mail.to = %mail.to, mail.subject = %mail.subject, mail.body = %mail.body, "mail (no portal.mail_dir configured: printed here)");
            return Ok(());
        };
        tokio::fs::create_dir_all(dir).await?;
        let name = format!(
            "{}-{}.eml",
            cardplane_domain::Timestamp::now().as_micros(),
            uuid::Uuid::now_v7().simple()
        );
        let text = format!(
            "To: {}\r\nSubject: {}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
            mail.to, mail.subject, mail.body
        );
        let path = dir.join(name);
        // Written under a temporary name and renamed, so a reader never sees half a message.
        let partial = path.with_extension("part");
        tokio::fs::write(&partial, text).await?;
        tokio::fs::rename(&partial, &path).await?;
        tracing::info!(mail.to = %mail.to, mail.subject = %mail.subject, path = %path.display(), "mail written");
        Ok(())
    }
}
