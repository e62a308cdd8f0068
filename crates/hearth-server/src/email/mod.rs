//! Outgoing email: through an SMTP relay when one is configured, otherwise written to
//! `<data_dir>/outbox/` as `.eml` files. Messages carry one-time links; their tokens are
//! never logged (the log says which kind of message went where, nothing more).

mod messages;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

pub use messages::Letter;

use crate::settings::{EmailSettings, SmtpTls};

/// Why an email could not be prepared or sent. Never contains the message body.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The sender or recipient address is not an address.
    #[error("invalid email address")]
    Address,
    /// The relay refused or could not be reached.
    #[error("smtp: {0}")]
    Smtp(String),
    /// The outbox could not be written.
    #[error("outbox: {0}")]
    Outbox(#[from] std::io::Error),
}

/// Where mail goes.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    route: Route,
}

#[derive(Clone)]
enum Route {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let route = match &self.route {
            Route::Smtp(_) => "smtp".to_owned(),
            Route::Outbox(dir) => format!("outbox {}", dir.display()),
        };
        f.debug_struct("Mailer").field("route", &route).finish()
    }
}

impl Mailer {
    /// A mailer per the settings; the outbox is `outbox` when no relay is configured.
    pub fn new(settings: &EmailSettings, outbox: PathBuf) -> Result<Self, MailError> {
        let from: Mailbox = settings.from.parse().map_err(|_| MailError::Address)?;
        let route = match &settings.smtp {
            None => Route::Outbox(outbox),
            Some(smtp) => {
                let tls = || TlsParameters::new(smtp.host.clone()).map_err(|e| MailError::Smtp(e.to_string()));
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    .port(smtp.port)
                    .timeout(Some(Duration::from_secs(20)));
                builder = match smtp.tls {
                    SmtpTls::None => builder.tls(Tls::None),
                    SmtpTls::Starttls => builder.tls(Tls::Required(tls()?)),
                    SmtpTls::Tls => builder.tls(Tls::Wrapper(tls()?)),
                };
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Route::Smtp(builder.build())
            }
        };
        Ok(Self { from, route })
    }

    /// Sends a letter and waits for the relay (or the disk).
    pub async fn send(&self, to: &str, letter: &Letter) -> Result<(), MailError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|_| MailError::Address)?)
            .subject(letter.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(String::clone(&letter.body))
            .map_err(|_| MailError::Address)?;
        match &self.route {
            Route::Smtp(transport) => {
                transport.send(message).await.map_err(|e| MailError::Smtp(e.to_string()))?;
                tracing::info!(kind = letter.kind, "email sent through SMTP");
            }
            Route::Outbox(dir) => {
                tokio::fs::create_dir_all(dir).await?;
                let name = format!("{}-{}.eml", hearth_store::Timestamp::now().as_millis(), uuid::Uuid::new_v4());
                let path = dir.join(name);
                tokio::fs::write(&path, message.formatted()).await?;
                tracing::info!(kind = letter.kind, path = %path.display(), "email written to outbox");
            }
        }
        Ok(())
    }

    /// Sends in a background task: the request that caused it answers at once, so neither
    /// relay latency nor whether a message was sent shows in its timing.
    pub fn send_later(self: &Arc<Self>, to: String, letter: Letter) {
        let mailer = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = mailer.send(&to, &letter).await {
                tracing::warn!(kind = letter.kind, %error, "email not sent");
            }
        });
    }
}
