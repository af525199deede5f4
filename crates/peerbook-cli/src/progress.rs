//! Progress of long commands on stderr: drawn only when stderr is a terminal (a
//! person is watching) and the work is large; in pipes and logs nothing is printed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this many peers a command finishes too fast to need progress.
pub const LARGE: u64 = 1_000;

fn visible(len: u64) -> bool {
    len >= LARGE && watching()
}

/// A bar counting `len` steps of `what` (hidden unless [`visible`]).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !visible(len) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A spinner for one long step over about `len` peers (hidden unless [`visible`]).
pub fn spinner(len: u64, what: &str) -> ProgressBar {
    if !visible(len) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        spinner.set_style(style);
    }
    spinner.set_message(format!("{what} ({len} peers)"));
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// Whether a person watches stderr (a terminal): the only case progress is drawn.
pub fn watching() -> bool {
    std::io::stderr().is_terminal()
}
