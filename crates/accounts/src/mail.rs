//! Sending invitation links by SMTP (when configured).

use std::fmt;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where invitations are sent from. Plain SMTP to a relay (e.g. the local MTA), optionally
/// with credentials.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad address: {0}")]
    Address(String),
    #[error("sending failed: {0}")]
    Send(String),
}

#[derive(Clone)]
pub struct Mailer {
    config: SmtpConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("config", &self.config).finish()
    }
}

impl Mailer {
    pub fn new(config: SmtpConfig) -> Self {
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).port(config.port);
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Self { transport: b.build(), config }
    }

    pub async fn send_invitation(&self, to: &str, inviter: &str, role: &str, link: &str) -> Result<(), MailError> {
        // Short lines (at most 76 characters), so the body goes as 7bit and the link stays intact.
        let text = format!(
            "You are invited to the Logbook console as {role},\r\nby {inviter}.\r\n\r\n\
             Open this link to choose your password and sign in:\r\n\r\n{link}\r\n\r\n\
             The link works once and expires.\r\n\
             If you did not expect this, ignore this message.\r\n"
        );
        // 7bit when it can be (ASCII), so the link stays one intact, clickable line; lettre
        // picks a safe encoding otherwise.
        let body = Body::new_with_encoding(text.clone(), ContentTransferEncoding::SevenBit)
            .unwrap_or_else(|_| Body::new(text));
        let message = Message::builder()
            .from(self.config.from.parse().map_err(|e| MailError::Address(format!("{e}")))?)
            .to(to.parse().map_err(|e| MailError::Address(format!("{e}")))?)
            .subject("You are invited to the Logbook console")
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body))
            .map_err(|e| MailError::Address(e.to_string()))?;
        self.transport.send(message).await.map(drop).map_err(|e| MailError::Send(e.to_string()))
    }
}
