//! Signals of the long-running commands: SIGINT / SIGTERM stop (unmount, close the socket),
//! SIGUSR1 writes the stats file. Handled on a thread of their own (signal-hook's self-pipe), so
//! the handlers may take locks and do I/O.

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;

/// Registers the handlers now and runs them on a background thread for the rest of the
/// process. Register before mounting: a signal that arrives between mounting and registering
/// would otherwise kill the process and leave the mount point dead ("transport endpoint is not
/// connected").
///
/// `on_stop` gets how many stop signals came so far (1 for the first), so a second Ctrl-C can
/// force what the first asked politely.
pub fn spawn(
    on_stop: impl Fn(u32) + Send + 'static,
    on_dump: impl Fn() + Send + 'static,
) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGUSR1])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stops = 0u32;
            for sig in signals.forever() {
                if sig == SIGUSR1 {
                    on_dump();
                } else {
                    stops = stops.saturating_add(1);
                    tracing::info!(signal = sig, "stop requested");
                    on_stop(stops);
                }
            }
        })?;
    Ok(())
}
