//! Progress of the long commands: on a terminal, a bar on stderr with the count, the rate and the
//! time left; when stderr is not a terminal (scripts, logs, CI), nothing at all.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A bar counting `len` items of `what` (`len` 0: the total is unknown, a spinner with the count).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = if len > 0 {
        (
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
            "{msg} [{wide_bar}] {human_pos}/{human_len} · {rate} · ETA {eta}",
        )
    } else {
        (ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()), "{spinner} {msg} {human_pos} · {rate}")
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        // Whole events per second: indicatif's own `per_sec` shows four decimals.
        let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", state.per_sec());
        };
        bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
    }
    bar.set_message(what.to_owned());
    bar
}
