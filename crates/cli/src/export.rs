//! `logbook export`: the events the filters select, newest first, as CSV or NDJSON, on stdout or
//! into a file. Recorded first, with the same `audit_log.exported` event as the export API.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use logbook_core::{EventAction, OrgSlug, Source, SystemClock};
use logbook_log::export::{for_each_event, parse_from, parse_to, seq_range, ExportEncoder, ExportFormat, ExportRecord};

use crate::cli::ExportArgs;
use crate::commands::{cli_actor, one_shot};
use crate::config::Config;
use crate::progress;

pub async fn run(config: &Config, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let tz = jiff::tz::TimeZone::get(&a.time_zone).with_context(|| format!("unknown time zone {:?}", a.time_zone))?;
    for code in &a.actions {
        EventAction::from_code(code)?;
    }
    let from = a.from.as_deref().map(|s| parse_from(s, &tz)).transpose()?;
    let to = a.to.as_deref().map(|s| parse_to(s, &tz)).transpose()?;
    let format = match a.format {
        crate::cli::ExportFormat::Csv => ExportFormat::Csv,
        crate::cli::ExportFormat::Ndjson => ExportFormat::Ndjson,
    };
    // The file is made before anything is recorded: an export that cannot be written is not one.
    let sink: Box<dyn Write> = match &a.output {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);

    let log = one_shot(config, Arc::new(SystemClock)).await?;
    let result = async {
        let Some(org) = log.existing_org(&OrgSlug::parse(&a.org)?).await? else { bail!("no organization {:?}", a.org) };
        let store = log.store().clone();
        let mut seqs = seq_range(&*store, &org, from, to).await?;
        // The export covers what is stored now, not its own audit event.
        let head = store.log_head(org.id).await?.size;
        seqs.end = seqs.end.min(head);
        seqs.start = seqs.start.min(seqs.end);
        let filter = logbook_store::EventFilter { user: a.user.clone(), actions: a.actions.clone(), seqs, text: None };
        let record = ExportRecord {
            format,
            time_zone: tz.iana_name().unwrap_or(&a.time_zone).to_owned(),
            search: None,
            user: a.user.clone(),
            actions: a.actions.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
        };
        // Recorded before any byte is written, as the API does: an export cut short is on record.
        log.append_read_record(&org, vec![record.event(&org, cli_actor(), Source::default(), "cli")], None).await?;

        // Without user or action filters the count is known in advance; with them, only its bound.
        let exact = a.user.is_none() && a.actions.is_empty();
        let bar = match &a.output {
            Some(_) => progress::bar(if exact { filter.seqs.end - filter.seqs.start } else { 0 }, "exporting"),
            None => indicatif::ProgressBar::hidden(),
        };
        // Streamed a page at a time; the encoder only ever holds what the last rows produced.
        let labels = logbook_log::export::ActionLabels::load(&*store, &org).await?;
        let mut enc = ExportEncoder::new(format, tz.clone(), labels)?;
        let n = for_each_event(&*store, &org, &filter, |row| {
            enc.row(row).map_err(std::io::Error::other)?;
            bar.inc(1);
            out.write_all(&enc.take().map_err(std::io::Error::other)?)
        })
        .await;
        bar.finish_and_clear();
        out.write_all(&enc.take()?)?;
        out.flush()?;
        Ok(n?)
    }
    .await;
    log.shutdown().await;
    let n = result?;
    match &a.output {
        Some(path) => eprintln!("exported {n} events to {}", path.display()),
        None => eprintln!("exported {n} events"),
    }
    Ok(ExitCode::SUCCESS)
}
