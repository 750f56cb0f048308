//! How events leave Logbook for people: the JSON view, CSV (RFC 4180, safe to open in a
//! spreadsheet), and the time filters that select them.
//!
//! Shared by `logbook export` and the export API, so both produce the same bytes.

use std::collections::BTreeMap;
use std::ops::Range;

use jiff::tz::TimeZone;
use logbook_core::{leaf, Action, Actor, EventAction, NewEvent, Outcome, Source, Timestamp};
use logbook_store::{EventFilter, EventRow, Org, Store, StoreError};
use serde::Serialize;

/// One event as shown: every field, its time in UTC and in the platform's zone.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub id: String,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    /// RFC 3339 with the platform zone's offset.
    pub time_local: String,
    /// The User column.
    pub user: String,
    pub actor: logbook_core::Actor,
    pub action: String,
    pub action_label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<logbook_core::Target>,
    pub details: String,
    pub fields: BTreeMap<String, String>,
    pub outcome: Outcome,
    pub source: logbook_core::Source,
    pub recorded_by: String,
    /// Where the event came from: the name of the API token that recorded it, or `platform`
    /// (the console's Source column, the CSV's Recorded By).
    pub origin: String,
    pub leaf_hash: String,
}

/// The labels of the action codes a log may hold: the platform's catalogue and the service
/// actions registered in the log. Loaded once per page or export.
#[derive(Debug, Clone, Default)]
pub struct ActionLabels(std::collections::HashMap<String, String>);

impl ActionLabels {
    pub async fn load(store: &dyn Store, org: &Org) -> Result<Self, StoreError> {
        Ok(Self::from_registered(store.service_actions(org.id).await?))
    }

    pub fn from_registered(actions: Vec<logbook_store::ServiceActionLabel>) -> Self {
        Self(actions.into_iter().map(|a| (a.code, a.label)).collect())
    }

    /// The label of `action`: the catalogue's, the registered one, or else the code itself.
    pub fn label<'a>(&'a self, action: &'a EventAction) -> &'a str {
        match action {
            EventAction::Platform(a) => a.label(),
            EventAction::Service(s) => self.0.get(s.code()).map_or(s.code(), String::as_str),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("stored event {seq} cannot be decoded: {error}")]
    Leaf { seq: u64, error: leaf::LeafError },
}

/// Local time, RFC 3339 with offset and microseconds.
pub fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    // jiff's RFC 3339 printer with the zone's offset at that instant: the same text as
    // strftime("%Y-%m-%dT%H:%M:%S%.6f%:z") at a fraction of the cost (exports call this per row).
    let ts = t.to_jiff();
    let mut out = String::with_capacity(32);
    let printer = jiff::fmt::temporal::DateTimePrinter::new().precision(Some(6));
    match printer.print_timestamp_with_offset(&ts, tz.to_offset(ts), &mut out) {
        Ok(()) => out,
        Err(_) => {
            let z = ts.to_zoned(tz.clone());
            format!("{}{}", z.strftime("%Y-%m-%dT%H:%M:%S%.6f"), z.strftime("%:z"))
        }
    }
}

impl EventView {
    pub fn from_row(row: &EventRow, tz: &TimeZone, labels: &ActionLabels) -> Result<Self, ViewError> {
        let e = leaf::decode(&row.leaf).map_err(|error| ViewError::Leaf { seq: row.seq, error })?;
        Ok(Self {
            seq: e.seq,
            id: e.id.to_string(),
            time: e.time.to_rfc3339(),
            time_local: local_time(e.time, tz),
            user: e.user().to_owned(),
            action: e.body.action.code().to_owned(),
            action_label: labels.label(&e.body.action).to_owned(),
            actor: e.body.actor,
            target: e.body.target,
            details: e.body.details,
            fields: e.body.fields,
            outcome: e.body.outcome,
            source: e.body.source,
            origin: logbook_core::origin(&e.body.recorded_by).to_owned(),
            recorded_by: e.body.recorded_by,
            leaf_hash: hex::encode(row.leaf_hash),
        })
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 12] = [
    "Timestamp",
    "User",
    "Action",
    "Details",
    "Timestamp (UTC)",
    "Seq",
    "Target",
    "Outcome",
    "IP",
    "User Agent",
    "Recorded By",
    "Leaf Hash",
];

/// A cell a spreadsheet could take for a formula (OWASP "CSV injection") gets a leading `'`.
/// So does every part of it that a spreadsheet splitting on another separator would take for a
/// cell of its own: in locales that split on `;` (or on `|` or a tab), `Invalid;=HYPERLINK(…)`
/// is two cells, the second a formula, so a trigger after `;`, `,`, `|` or a tab (and optional
/// spaces) gets its `'` too.
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    const SEPARATORS: &[u8] = b";,|\t";
    fn is_trigger(b: u8) -> bool {
        matches!(b, b'=' | b'+' | b'-' | b'@')
    }
    let bytes = cell.as_bytes();
    let leading = matches!(bytes.first(), Some(&b) if is_trigger(b) || matches!(b, b'\t' | b'\r' | b'\n' | 0));
    // Where a separated part starts with a trigger: the trigger's offset.
    let mut inner = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if SEPARATORS.contains(b) {
            let rest = &bytes[i + 1..];
            let spaces = rest.iter().take_while(|&&c| c == b' ').count();
            if rest.get(spaces).is_some_and(|&c| is_trigger(c)) {
                inner.push(i + 1 + spaces);
            }
        }
    }
    if !leading && inner.is_empty() {
        return cell.into();
    }
    let mut out = String::with_capacity(cell.len() + 1 + inner.len());
    if leading {
        out.push('\'');
    }
    let mut from = 0;
    for at in inner {
        out.push_str(&cell[from..at]);
        out.push('\'');
        from = at;
    }
    out.push_str(&cell[from..]);
    out.into()
}

impl EventView {
    /// The CSV cells, neutralized; borrowed where nothing needs changing (an export writes
    /// hundreds of thousands of these a second).
    pub fn csv_record(&self) -> [std::borrow::Cow<'_, str>; 12] {
        use std::borrow::Cow;
        let target = self.target.as_ref().map(|t| if t.display.is_empty() { &t.id } else { &t.display });
        let owned = |s: String| -> Cow<'_, str> { Cow::Owned(neutralize(&s).into_owned()) };
        [
            neutralize(&self.time_local),
            neutralize(&self.user),
            neutralize(&self.action_label),
            neutralize(&self.details),
            neutralize(&self.time),
            Cow::Owned(self.seq.to_string()),
            target.map(|t| neutralize(t)).unwrap_or_default(),
            Cow::Borrowed(match self.outcome {
                Outcome::Success => "success",
                Outcome::Failure => "failure",
            }),
            self.source.ip.map(|ip| owned(ip.to_string())).unwrap_or_default(),
            self.source.user_agent.as_deref().map(neutralize).unwrap_or_default(),
            neutralize(&self.origin),
            neutralize(&self.leaf_hash),
        ]
    }
}

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180: CRLF line ends, quoted where needed, a header record, [`CSV_HEADER`] columns.
    Csv,
    /// One [`EventView`] JSON object per line.
    Ndjson,
}

impl ExportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Ndjson => "ndjson",
        }
    }
}

/// The `audit_log.exported` event an export records, built in one place so that an export
/// through the API and one through `logbook export` are on record with the same fields:
/// `format`, `time_zone`, and each filter given (`filter.q`, `filter.user`, `filter.actions`,
/// `filter.from`, `filter.to`, as the exporter wrote them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRecord {
    pub format: ExportFormat,
    /// The IANA name of the zone the export's day bounds and local times are in.
    pub time_zone: String,
    /// The text search.
    pub search: Option<String>,
    pub user: Option<String>,
    pub actions: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ExportRecord {
    pub fn fields(&self) -> BTreeMap<String, String> {
        let mut fields = BTreeMap::new();
        fields.insert("format".to_owned(), self.format.name().to_owned());
        fields.insert("time_zone".to_owned(), self.time_zone.clone());
        // Cut to the event's limits, so that an over-long filter cannot fail its own record.
        for (key, value) in self.filters() {
            fields.insert(format!("filter.{key}"), value.chars().take(logbook_core::LIMITS.field_value).collect());
        }
        fields
    }

    /// The filters given, by name, in the order the details name them.
    fn filters(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(q) = &self.search {
            out.push(("q", q.clone()));
        }
        if let Some(u) = &self.user {
            out.push(("user", u.clone()));
        }
        if !self.actions.is_empty() {
            out.push(("actions", self.actions.join(",")));
        }
        if let Some(f) = &self.from {
            out.push(("from", f.clone()));
        }
        if let Some(t) = &self.to {
            out.push(("to", t.clone()));
        }
        out
    }

    pub fn details(&self) -> String {
        let described: Vec<String> = self
            .filters()
            .into_iter()
            .map(|(key, value)| match key {
                "q" => format!("search {value:?}"),
                "actions" => format!("actions {}", value.replace(',', ", ")),
                _ => format!("{key} {value}"),
            })
            .collect();
        let details = format!(
            "Exported the audit log as {} ({})",
            self.format.name().to_uppercase(),
            if described.is_empty() { "no filters".to_owned() } else { described.join("; ") }
        );
        details.chars().take(logbook_core::LIMITS.details).collect()
    }

    /// The event, recorded by whoever exports (`recorded_by`: the API's or the CLI's name).
    pub fn event(&self, org: &Org, actor: Actor, source: Source, recorded_by: impl Into<String>) -> NewEvent {
        let slug = org.slug.to_string();
        let mut event = NewEvent::builder(Action::AuditLogExported, actor, recorded_by)
            .target("audit_log", &slug, &slug)
            .details(self.details())
            .source(source);
        for (key, value) in self.fields() {
            event = event.field(&key, value);
        }
        event.build()
    }
}

/// Where the CSV writer puts its bytes, shared with the encoder so that it can take them
/// without giving up the writer (whose buffer `csv` keeps to itself).
#[derive(Debug, Default)]
struct Sink(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn csv_writer() -> csv::Writer<Sink> {
    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Sink::default())
}

/// Turns rows into export bytes a piece at a time: what `logbook export` writes to stdout and
/// the export API streams, so both produce the same bytes. Holds only the bytes not yet taken.
#[derive(Debug)]
pub struct ExportEncoder {
    format: ExportFormat,
    tz: TimeZone,
    labels: ActionLabels,
    csv: Option<csv::Writer<Sink>>,
    out: Vec<u8>,
}

impl ExportEncoder {
    /// A new export; for CSV the header record is already in [`ExportEncoder::take`]'s bytes.
    /// `labels`: those of the exported log ([`ActionLabels::load`]).
    pub fn new(format: ExportFormat, tz: TimeZone, labels: ActionLabels) -> Result<Self, ExportError> {
        let mut enc = Self { format, tz, labels, csv: None, out: Vec::new() };
        if format == ExportFormat::Csv {
            let mut w = csv_writer();
            w.write_record(CSV_HEADER).map_err(std::io::Error::other)?;
            enc.csv = Some(w);
        }
        Ok(enc)
    }

    pub fn row(&mut self, row: &EventRow) -> Result<(), ExportError> {
        let view = EventView::from_row(row, &self.tz, &self.labels).map_err(std::io::Error::other)?;
        match &mut self.csv {
            Some(w) => w.write_record(view.csv_record().iter().map(|c| c.as_bytes())).map_err(std::io::Error::other)?,
            None => {
                serde_json::to_writer(&mut self.out, &view).map_err(std::io::Error::other)?;
                self.out.push(b'\n');
            }
        }
        Ok(())
    }

    /// The bytes encoded since the last call.
    pub fn take(&mut self) -> Result<Vec<u8>, ExportError> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
            return Ok(std::mem::take(&mut *w.get_ref().0.lock()));
        }
        Ok(std::mem::take(&mut self.out))
    }

    pub fn format(&self) -> ExportFormat {
        self.format
    }
}

/// A `from`/`to` bound: an RFC 3339 instant, or a `YYYY-MM-DD` date read as a whole day in the
/// platform's zone (`to` includes its day).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither an RFC 3339 instant (2026-11-26T09:30:00Z) nor a date (2026-11-26)")]
pub struct BadBound(pub String);

/// Start of the range: the instant, or the first moment of the day in `tz`.
pub fn parse_from(s: &str, tz: &TimeZone) -> Result<Timestamp, BadBound> {
    parse_bound(s, tz, false)
}

/// End of the range (exclusive): the instant, or the first moment of the next day in `tz`.
pub fn parse_to(s: &str, tz: &TimeZone) -> Result<Timestamp, BadBound> {
    parse_bound(s, tz, true)
}

fn parse_bound(s: &str, tz: &TimeZone, end_of_day: bool) -> Result<Timestamp, BadBound> {
    let bad = || BadBound(s.chars().take(64).collect());
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        // An instant `to` is inclusive: the range ends just after it.
        let us = t.as_microsecond() + i64::from(end_of_day);
        return Ok(Timestamp::from_micros(us));
    }
    let date: jiff::civil::Date = s.parse().map_err(|_| bad())?;
    let day = if end_of_day { date.tomorrow().map_err(|_| bad())? } else { date };
    // The first moment of the day in the zone, correct across DST changes.
    let start = day.to_zoned(tz.clone()).map_err(|_| bad())?;
    Ok(Timestamp::from_micros(start.timestamp().as_microsecond()))
}

/// The seqs of the events with `from <= time < to`.
pub async fn seq_range(
    store: &dyn Store,
    org: &Org,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Range<u64>, StoreError> {
    let start = match from {
        Some(t) => store.seq_at_or_after(org.id, t).await?,
        None => 0,
    };
    let end = match to {
        Some(t) => store.seq_at_or_after(org.id, t).await?,
        None => u64::MAX,
    };
    Ok(start..end.max(start))
}

/// Every event matching `filter`, newest first, a page at a time: memory stays flat however
/// many there are.
pub async fn for_each_event(
    store: &dyn Store,
    org: &Org,
    filter: &EventFilter,
    mut each: impl FnMut(&EventRow) -> std::io::Result<()>,
) -> Result<u64, ExportError> {
    const PAGE: usize = 2000;
    let mut before = u64::MAX;
    let mut n = 0;
    loop {
        let page = store.query_events(org.id, filter, before, PAGE).await?;
        for row in &page.rows {
            each(row)?;
        }
        n += page.rows.len() as u64;
        match page.next_before {
            Some(next) => before = next,
            None => return Ok(n),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_record_names_the_format_zone_and_every_filter_given() {
        let none = ExportRecord {
            format: ExportFormat::Csv,
            time_zone: "UTC".into(),
            search: None,
            user: None,
            actions: vec![],
            from: None,
            to: None,
        };
        assert_eq!(none.details(), "Exported the audit log as CSV (no filters)");
        assert_eq!(none.fields().keys().collect::<Vec<_>>(), ["format", "time_zone"]);
        let all = ExportRecord {
            format: ExportFormat::Ndjson,
            time_zone: "Europe/Berlin".into(),
            search: Some("vip".into()),
            user: Some("ada@acme.example".into()),
            actions: vec!["login.failed".into(), "logout".into()],
            from: Some("2026-01-01".into()),
            to: Some("2026-01-31".into()),
        };
        let fields = all.fields();
        assert_eq!(fields["format"], "ndjson");
        assert_eq!(fields["time_zone"], "Europe/Berlin");
        assert_eq!(fields["filter.q"], "vip");
        assert_eq!(fields["filter.user"], "ada@acme.example");
        assert_eq!(fields["filter.actions"], "login.failed,logout");
        assert_eq!(fields["filter.from"], "2026-01-01");
        assert_eq!(fields["filter.to"], "2026-01-31");
        assert_eq!(
            all.details(),
            "Exported the audit log as NDJSON (search \"vip\"; user ada@acme.example; actions login.failed, logout; from 2026-01-01; to 2026-01-31)"
        );
        let long = ExportRecord { search: Some("x".repeat(10_000)), ..all };
        assert_eq!(long.details().chars().count(), logbook_core::LIMITS.details);
        assert_eq!(long.fields()["filter.q"].chars().count(), logbook_core::LIMITS.field_value);
        let e = long.event(
            &Org {
                id: logbook_core::OrgId(1),
                slug: logbook_core::OrgSlug::default_org(),
                created: Timestamp::from_micros(0),
            },
            Actor { kind: logbook_core::ActorKind::System, id: "cli:test".into(), email: None },
            Source::default(),
            "cli",
        );
        assert_eq!(e.action, Action::AuditLogExported);
        e.validate().unwrap();
    }

    #[test]
    fn formula_prefixes_are_neutralized() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "\0x"] {
            assert!(neutralize(bad).starts_with('\''), "{bad:?}");
        }
        for fine in ["bob@example.com", "1-2", "Login Failed", "", "a; b", "x|y", "Role changed from Auditor to Admin"]
        {
            assert_eq!(neutralize(fine), fine);
        }
        // A trigger after a separator that another locale splits on.
        assert_eq!(neutralize("Invalid;=HYPERLINK(\"x\")"), "Invalid;'=HYPERLINK(\"x\")");
        assert_eq!(neutralize("a, +1|@b\t-c"), "a, '+1|'@b\t'-c");
        assert_eq!(neutralize("=a;=b"), "'=a;'=b");
    }

    /// Issue 12, item 12: read back with a reader that splits on `;` (and one on `|` and on a
    /// tab), as a spreadsheet in such a locale would, no cell starts a formula.
    #[test]
    fn no_cell_is_a_formula_for_a_reader_splitting_on_another_separator() {
        let hostile = [
            "Invalid password;=HYPERLINK(\"https://evil.example\")",
            "x; @SUM(A1)",
            "ok|+cmd",
            "a\t-2+3",
            "plain, =1+1",
            "=start;-next",
        ];
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        for cell in hostile {
            w.write_record([neutralize(cell).as_ref(), "Login Failed"]).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        for sep in [b';', b'|', b'\t', b','] {
            let mut r =
                csv::ReaderBuilder::new().delimiter(sep).has_headers(false).flexible(true).from_reader(&bytes[..]);
            for record in r.records() {
                for field in record.unwrap().iter() {
                    let first = field.trim_start_matches([' ', '"']).bytes().next();
                    assert!(
                        !matches!(first, Some(b'=' | b'+' | b'-' | b'@')),
                        "{field:?} starts a formula when split on {:?}",
                        sep as char
                    );
                }
            }
        }
    }

    #[test]
    fn dates_are_whole_days_in_the_zone_across_dst() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 2026-03-08 is 23 hours long in New York (clocks spring forward at 02:00).
        let from = parse_from("2026-03-08", &ny).unwrap();
        let to = parse_to("2026-03-08", &ny).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-03-08T05:00:00.000000Z");
        assert_eq!(to.to_rfc3339(), "2026-03-09T04:00:00.000000Z");
        assert_eq!((to.as_micros() - from.as_micros()) / 3_600_000_000, 23);
        // 2026-11-01 is 25 hours long.
        let span =
            parse_to("2026-11-01", &ny).unwrap().as_micros() - parse_from("2026-11-01", &ny).unwrap().as_micros();
        assert_eq!(span / 3_600_000_000, 25);
        let utc = TimeZone::UTC;
        assert_eq!(parse_from("2026-11-26T09:30:00Z", &utc).unwrap().to_rfc3339(), "2026-11-26T09:30:00.000000Z");
        assert_eq!(
            parse_to("2026-11-26T09:30:00+01:00", &utc).unwrap().as_micros() % 1_000_000,
            1,
            "an instant `to` is inclusive"
        );
        assert!(parse_from("yesterday", &utc).is_err());
        assert!(parse_from("2026-02-30", &utc).is_err());
    }

    #[test]
    fn local_time_carries_the_offset() {
        let t = Timestamp::from_micros(1_764_149_400_123_456); // 2025-11-26T09:30:00.123456Z
        assert_eq!(local_time(t, &TimeZone::get("Europe/Berlin").unwrap()), "2025-11-26T10:30:00.123456+01:00");
        assert_eq!(local_time(t, &TimeZone::UTC), "2025-11-26T09:30:00.123456+00:00");
        assert_eq!(local_time(Timestamp::from_micros(0), &TimeZone::UTC), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn leaf_hashes_are_lowercase_hex() {
        assert_eq!(hex::encode([0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex::encode([0u8; 0]), "");
    }

    /// The fast printer writes exactly what strftime wrote, across zones, DST and odd offsets.
    #[test]
    fn local_time_matches_strftime() {
        let zones =
            ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"];
        for zone in zones {
            let tz = TimeZone::get(zone).unwrap();
            let mut us: i64 = 1_700_000_000_000_000;
            for _ in 0..2000 {
                us += 7_919_123_457; // about 2.2 hours and an odd fraction, to cross DST changes
                let t = Timestamp::from_micros(us);
                let z = t.to_jiff().to_zoned(tz.clone());
                let want = format!("{}{}", z.strftime("%Y-%m-%dT%H:%M:%S%.6f"), z.strftime("%:z"));
                assert_eq!(local_time(t, &tz), want, "{zone} {us}");
            }
        }
    }
}
