//! Sending invitation links by SMTP (when configured).

use std::fmt;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// Where invitations are sent from: an SMTP relay, optionally with credentials.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: SmtpTls,
}

/// How the connection to the relay is protected. The relay's certificate is checked against
/// the system's trusted roots and must name `host`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the relay must offer (port 587 or 25).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a relay on this host or a trusted network, and never with
    /// credentials (they would cross the network readable).
    None,
}

impl std::str::FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "starttls" => Ok(Self::Starttls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            _ => Err(format!("{s:?} is not starttls, tls or none")),
        }
    }
}

impl SmtpConfig {
    /// The rule the transport relies on: credentials only over TLS.
    pub fn check(&self) -> Result<(), MailError> {
        if self.tls == SmtpTls::None && (self.username.is_some() || self.password.is_some()) {
            return Err(MailError::Config(
                "SMTP credentials (smtp_username, smtp_password) need an encrypted connection: set smtp_tls to starttls or tls, or remove the credentials".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("bad address: {0}")]
    Address(String),
    #[error("sending failed: {0}")]
    Send(String),
    #[error("{0}")]
    Config(String),
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
    /// Refuses credentials without TLS ([`SmtpConfig::check`]).
    pub fn new(config: SmtpConfig) -> Result<Self, MailError> {
        config.check()?;
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let params = TlsParameters::new(config.host.clone())
                    .map_err(|e| MailError::Config(format!("SMTP TLS for {}: {e}", config.host)))?;
                if config.tls == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    // Required, not opportunistic: a relay (or someone in between) that does not
                    // offer STARTTLS gets nothing, rather than the message in the clear.
                    Tls::Required(params)
                }
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).port(config.port).tls(tls);
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Self { transport: b.build(), config })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls: SmtpTls, username: Option<&str>) -> SmtpConfig {
        SmtpConfig {
            host: "mail.example.com".into(),
            port: 587,
            from: "logbook@example.com".into(),
            username: username.map(str::to_owned),
            password: username.map(|_| "hunter2-password".to_owned()),
            tls,
        }
    }

    #[test]
    fn credentials_are_refused_without_tls() {
        let e = Mailer::new(config(SmtpTls::None, Some("logbook"))).unwrap_err().to_string();
        assert!(e.contains("need an encrypted connection"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(Mailer::new(config(SmtpTls::None, None)).is_ok(), "a plain local relay without credentials");
        assert!(Mailer::new(config(SmtpTls::Starttls, Some("logbook"))).is_ok());
        assert!(Mailer::new(config(SmtpTls::Tls, Some("logbook"))).is_ok());
        assert_eq!(SmtpTls::default(), SmtpTls::Starttls);
    }
}
