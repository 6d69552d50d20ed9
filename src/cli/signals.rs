//! SIGINT and SIGTERM during `uhc search`: the first sets a flag the engine polls (it
//! stops claiming and proposing, lets the evaluations in flight finish and store, and the
//! command exits 130); a second one exits at once with 130, leaving in-flight work to the
//! next run's recovery (every finished evaluation is already committed).

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first SIGINT or SIGTERM.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The exit status after a stop by signal (128 + SIGINT, as shells report it).
pub const EXIT_SIGNALLED: u8 = 130;

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and `_exit`.
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { libc::_exit(EXIT_SIGNALLED as libc::c_int) };
    }
}

/// Installs the handlers (on Unix; elsewhere the default handling stays).
pub fn install() -> &'static AtomicBool {
    #[cfg(unix)]
    {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler touches only a static atomic and calls `_exit`.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    }
    &STOP
}
