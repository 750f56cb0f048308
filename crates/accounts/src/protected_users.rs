//! Protected users: the people whose accounts the platform watches, added one at a time or
//! imported from a CSV file.

use std::collections::HashSet;

use logbook_core::{Action, NewEvent, ProtectedUserId};
use logbook_log::AppendError;
use logbook_store::{AccountMutation, MutationError};
use serde::Serialize;

use crate::events::event;
use crate::permission::{Authorized, Caller, ManageProtectedUsers, ReadProtectedUsers};
use crate::{account, normalize_email, rfc3339, AccountError, Accounts, ProtectedUserView};

#[derive(Debug, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportRowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub email: String,
    pub error: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub added: u64,
    pub errors: Vec<ImportRowError>,
}

pub const MAX_IMPORT_ROWS: usize = 10_000;
const NAME_MAX: usize = 200;

/// The rows of a protected-users CSV import, checked, before anything is looked up or stored.
#[derive(Debug)]
pub struct ParsedImport {
    /// (line, normalized email, name) of each acceptable row, emails distinct.
    pub valid: Vec<(u64, String, String)>,
    pub errors: Vec<ImportRowError>,
}

/// Reads a protected-users CSV (header `email,name`, in any order and case) and checks every
/// row: the pure part of [`Accounts::import_protected`], kept apart so it can be fuzzed.
pub fn parse_protected_csv(csv_text: &[u8]) -> Result<ParsedImport, AccountError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::All).from_reader(csv_text);
    let headers = reader.headers().map_err(|e| AccountError::Invalid(format!("the file is not valid CSV: {e}")))?;
    let col = |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name));
    let (Some(email_col), Some(name_col)) = (col("email"), col("name")) else {
        return Err(AccountError::Invalid("the first line must be the header: email,name".into()));
    };
    let mut errors = Vec::new();
    let mut valid: Vec<(u64, String, String)> = Vec::new();
    let mut seen = HashSet::new();
    let mut lines = LineCounter { text: csv_text, at: 0, line: 1 };
    let mut line = 1;
    for record in reader.records() {
        let start = match &record {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        };
        line = start.map_or(line + 1, |p| lines.line_at(p.byte()));
        if valid.len() + errors.len() >= MAX_IMPORT_ROWS {
            return Err(AccountError::Invalid(format!("at most {MAX_IMPORT_ROWS} rows can be imported at once")));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(ImportRowError { line, email: String::new(), error: format!("not valid CSV: {e}") });
                continue;
            }
        };
        let raw_email = record.get(email_col).unwrap_or_default();
        let shown: String = raw_email.chars().take(254).collect();
        let checked =
            normalize_email(raw_email).and_then(|e| Ok((e, check_name(record.get(name_col).unwrap_or_default())?)));
        match checked {
            Err(e) => errors.push(ImportRowError { line, email: shown, error: e.to_string() }),
            Ok((email, _)) if !seen.insert(email.clone()) => {
                errors.push(ImportRowError { line, email, error: "listed twice in the file".into() })
            }
            Ok((email, name)) => valid.push((line, email, name)),
        }
    }
    Ok(ParsedImport { valid, errors })
}

/// The file's own line numbers: counts line breaks (`\r\n`, `\r` or `\n`) up to a record's
/// first byte, moving forward only. Counting records instead would be wrong after a blank line
/// or a quoted cell that spans lines, and the CSV reader's own line count ignores a lone `\r`.
struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of the record the reader says starts at `byte`. The reader's position may be
    /// the blank lines it skipped before the record, so those are passed over too (a record
    /// never starts with a line break).
    fn line_at(&mut self, byte: u64) -> u64 {
        let mut end = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while self.text.get(end).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            end += 1;
        }
        while self.at < end {
            match self.text[self.at] {
                b'\n' => self.line += 1,
                b'\r' if self.text.get(self.at + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            self.at += 1;
        }
        self.line
    }
}

fn check_name(name: &str) -> Result<String, AccountError> {
    let n = name.trim();
    if n.is_empty()
        || n.chars().count() > NAME_MAX
        || n.chars().any(|c| c.is_control() || logbook_core::is_format_character(c))
    {
        return Err(AccountError::Invalid(format!(
            "the name must be 1 to {NAME_MAX} characters, without control or invisible formatting characters"
        )));
    }
    Ok(n.to_owned())
}

impl Accounts {
    pub async fn list_protected(
        &self,
        _: &Authorized<ReadProtectedUsers>,
        search: Option<&str>,
        after_email: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ProtectedUserView>, AccountError> {
        let search = search.map(str::trim).filter(|s| !s.is_empty());
        let rows = self.log.store().protected_users(self.org.id, search, after_email, limit.clamp(1, 500)).await?;
        Ok(rows
            .into_iter()
            .map(|p| ProtectedUserView { id: p.id, email: p.email, name: p.name, added: rfc3339(p.added) })
            .collect())
    }

    fn protected_added(&self, by: &Caller, id: ProtectedUserId, email: &str, name: &str, method: &str) -> NewEvent {
        event(Action::ProtectedUserAdded, by.actor(), &by.source)
            .target("protected_user", id, email)
            .details(format!("Added {name} <{email}> to protected users"))
            .field("name", name)
            .field("method", method)
            .build()
    }

    pub async fn add_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        email: &str,
        name: &str,
    ) -> Result<ProtectedUserView, AccountError> {
        let email = normalize_email(email)?;
        let name = check_name(name)?;
        let id = ProtectedUserId(self.new_id());
        let e = self.protected_added(by, id, &email, &name, "single");
        match self
            .append(vec![e], AccountMutation::AddProtectedUser { id, email: email.clone(), name: name.clone() })
            .await
        {
            Err(AccountError::Conflict(_)) => {
                return Err(AccountError::Conflict("this email address is already a protected user".into()))
            }
            other => other?,
        }
        Ok(ProtectedUserView { id, email, name, added: rfc3339(self.now()) })
    }

    pub async fn remove_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        id: ProtectedUserId,
    ) -> Result<(), AccountError> {
        let p =
            self.log.store().protected_user(self.org.id, id).await?.ok_or(AccountError::NotFound("protected user"))?;
        let e = event(Action::ProtectedUserRemoved, by.actor(), &by.source)
            .target("protected_user", id, &p.email)
            .details(format!("Removed {} <{}> from protected users", p.name, p.email))
            .field("name", &p.name)
            .build();
        self.append(vec![e], AccountMutation::RemoveProtectedUser { id }).await
    }

    /// Bulk import of a CSV with the header `email,name`: adds every valid row (one event
    /// each) and reports the rest by line.
    pub async fn import_protected(
        &self,
        by: &Authorized<ManageProtectedUsers>,
        csv_text: &[u8],
    ) -> Result<ImportReport, AccountError> {
        let ParsedImport { valid, mut errors } = parse_protected_csv(csv_text)?;
        let emails: Vec<String> = valid.iter().map(|(_, e, _)| e.clone()).collect();
        let existing: HashSet<String> =
            self.log.store().protected_emails(self.org.id, &emails).await?.into_iter().collect();
        let mut added = 0;
        // Appended concurrently, so the sequencer commits many rows per transaction.
        for chunk in valid.chunks(256) {
            let mut tasks = tokio::task::JoinSet::new();
            for (line, email, name) in chunk {
                if existing.contains(email) {
                    errors.push(ImportRowError {
                        line: *line,
                        email: email.clone(),
                        error: "already a protected user".into(),
                    });
                    continue;
                }
                let id = ProtectedUserId(self.new_id());
                let e = self.protected_added(by, id, email, name, "csv_import");
                let m = AccountMutation::AddProtectedUser { id, email: email.clone(), name: name.clone() };
                let (log, org, line, email) = (self.log.clone(), self.org.clone(), *line, email.clone());
                tasks.spawn(async move { (line, email, log.append(&org, vec![e], account(m)).await) });
            }
            while let Some(done) = tasks.join_next().await {
                let (line, email, result) = done.map_err(|e| AccountError::Internal(e.to_string()))?;
                match result {
                    Ok(_) => added += 1,
                    Err(AppendError::Rejected(MutationError::EmailTaken)) => {
                        errors.push(ImportRowError { line, email, error: "already a protected user".into() })
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        errors.sort_by_key(|e| e.line);
        Ok(ImportReport { added, errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_csv_rows_are_checked_before_any_lookup() {
        let csv = "\u{feff}Name , EMAIL\nAda Lovelace,  Ada@Example.COM \nNobody,not-an-email\nAda again,ada@example.com\n,bob@example.com\nGrace,grace@example.com\n";
        let p = parse_protected_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            p.valid,
            vec![
                (2, "ada@example.com".to_owned(), "Ada Lovelace".to_owned()),
                (6, "grace@example.com".to_owned(), "Grace".to_owned())
            ]
        );
        let errors: Vec<_> = p.errors.iter().map(|e| (e.line, e.email.as_str())).collect();
        assert_eq!(errors, vec![(3, "not-an-email"), (4, "ada@example.com"), (5, "bob@example.com")]);
        assert!(parse_protected_csv(b"mail,name\nx@y.z,X\n").is_err(), "no email column");
    }

    /// The reported line is the file's line, whatever the line endings, after blank lines and
    /// quoted cells that span lines. (The fuzzing session found the record count used instead.)
    #[test]
    fn protected_csv_lines_are_the_file_lines() {
        let lines = [
            "email,name",
            "",
            "a@example.com,One",
            "\"bad",
            "email\",Two",
            "",
            "",
            "also bad,Three",
            "b@example.com,Four",
            "",
        ];
        for eol in ["\n", "\r\n", "\r"] {
            let p = parse_protected_csv(lines.join(eol).as_bytes()).unwrap();
            let errors: Vec<_> = p.errors.iter().map(|e| (e.line, e.email.clone())).collect();
            let bad = format!("bad{eol}email");
            assert_eq!(errors, vec![(4, bad), (8, "also bad".to_owned())], "line endings {eol:?}");
            let valid: Vec<_> = p.valid.iter().map(|(l, e, _)| (*l, e.as_str())).collect();
            assert_eq!(valid, vec![(3, "a@example.com"), (9, "b@example.com")], "line endings {eol:?}");
        }
    }
}
