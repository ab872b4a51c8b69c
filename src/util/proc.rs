//! Readings about the current process (and others by PID) from `/proc`: resident memory
//! and the open-file limit that decides how many connections one process may hold.

/// Resident set size of a process in bytes, from `/proc/PID/statm`; `None` when unreadable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

/// Resident set size of this process in bytes.
pub fn self_rss_bytes() -> Option<u64> {
    rss_bytes(std::process::id())
}

/// The (soft, hard) limits on open files of this process.
pub fn nofile_limits() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and has no other effect.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (lim.rlim_cur, lim.rlim_max)
}

/// Raises the soft open-file limit to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    let (_, hard) = nofile_limits();
    let lim = libc::rlimit { rlim_cur: hard, rlim_max: hard };
    // SAFETY: setrlimit only reads the struct; failure leaves the old limit in place.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    nofile_limits().0
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_rss() {
        let rss = super::self_rss_bytes().expect("statm readable");
        assert!(rss > 100_000, "rss {rss} implausibly small");
    }

    #[test]
    fn raises_soft_limit_to_hard() {
        let soft = super::raise_nofile_limit();
        assert_eq!(soft, super::nofile_limits().1);
    }
}
