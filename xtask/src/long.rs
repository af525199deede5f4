//! `cargo xtask long [crash|model]`: the long versions of the randomized tests.

use crate::{cargo, run};

/// `cargo xtask long [crash|model]`.
pub fn long(args: &[String]) -> Result<(), String> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--release", "--all-features"]);
    match which {
        "crash" => {
            cmd.env("PEERBOOK_CRASH_POINTS", "10000")
                .env("PEERBOOK_KILLS", "1000")
                .env("PEERBOOK_POWER_CUTS", "1000");
        }
        "model" => {
            cmd.env("PROPTEST_CASES", "5000");
        }
        "all" => {
            cmd.env("PEERBOOK_CRASH_POINTS", "10000")
                .env("PEERBOOK_KILLS", "1000")
                .env("PEERBOOK_POWER_CUTS", "1000")
                .env("PROPTEST_CASES", "5000");
        }
        other => return Err(format!("unknown long run `{other}` (use crash or model)")),
    }
    run(&mut cmd)
}
