//! Pieces the bench binaries share (included with `mod common;`).

/// CPU time of this thread in seconds: unlike wall time, it excludes the time other
/// processes hold the core, so it is the steadier figure on a shared machine.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_THREAD_CPUTIME_ID unavailable");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
