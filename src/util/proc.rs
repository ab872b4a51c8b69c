//! Readings about the current process (and others by PID) from `/proc`: resident memory
//! and the open-file limit that decides how many connections one process may hold. And
//! the one policy for the processes mcpscript starts ([`spawn_group`]): each runs in its
//! own process group, every signal goes to the whole group, and the group dies with
//! mcpscript, even when mcpscript is SIGKILLed.
//!
//! # Process groups and the supervisor
//! Servers are often started through wrappers (`npx`, `npm start`, `sh -c`), so signalling
//! the direct child is not enough: its children would outlive the run. [`spawn_group`]
//! puts the command in a new process group and [`Group`] signals it with `killpg`:
//! kill, stop, suspend, resume and drop all reach every process of the group.
//!
//! When mcpscript itself is SIGKILLed nothing of it runs any more, and PR_SET_PDEATHSIG
//! only reaches a direct child (a SIGKILLed `sh` leaves its `sleep` running), and
//! PR_SET_CHILD_SUBREAPER only helps while the subreaper lives. So the binary starts
//! commands through a supervisor: itself, re-executed as the hidden `mcpscript reap`
//! ([`reap`]). The supervisor runs in its own process group, asks for a signal when its
//! parent dies (PR_SET_PDEATHSIG, checked against `getppid` because Linux also sends it
//! when merely the spawning *thread* exits), starts the command in a new group with
//! inherited stdin/stdout/stderr (the data never passes through it), reports the command's
//! PID on a pipe and waits. When its parent is gone it SIGKILLs the group; when the command
//! exits it SIGKILLs what is left of the group and exits with the command's status (the
//! same code, or killed by the same signal). SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to
//! the supervisor are forwarded to the group. mcpscript signals the group itself (the
//! command's PID is the group id), so suspend and resume act at once.
//!
//! Without a registered supervisor executable ([`set_supervisor`]; `cli::main` registers
//! the running binary, a library user such as a test may register `mcpscript`), commands
//! are started directly: their own group and PR_SET_PDEATHSIG on the direct child.

use std::os::unix::process::CommandExt;

/// Resident set size of a process in bytes, from `/proc/PID/statm`; `None` when unreadable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

/// Proportional set size of a process in bytes, from `/proc/PID/smaps_rollup`: its private
/// pages plus each page it shares with N processes as 1/N (so the pages of one binary
/// mapped by several worker processes count once over them); `None` when unreadable.
pub fn pss_bytes(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

/// Makes a child process receive SIGKILL when this process (strictly: the spawning thread)
/// dies.
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe and only affects the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// The executable that supervises spawned commands (`mcpscript reap`), once registered.
static SUPERVISOR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Signal the supervisor asks for when its parent dies (then checked with `getppid`).
const PARENT_GONE: libc::c_int = libc::SIGUSR2;

/// How long spawning waits for the supervisor to report the command's PID.
const REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers `exe` (an `mcpscript` binary) as the supervisor of every command started
/// from now on by [`spawn_group`]; the first registration wins.
pub fn set_supervisor(exe: std::path::PathBuf) {
    let _ = SUPERVISOR.set(exe);
}

/// Registers the running executable as the supervisor: for the `mcpscript` binary.
pub fn supervise_with_current_exe() {
    if let Ok(exe) = std::env::current_exe() {
        set_supervisor(exe);
    }
}

/// A command started by [`spawn_group`]: the leader of its own process group, whose PID
/// is the group id. Signals go to the whole group; dropping it SIGKILLs the group.
pub struct Group {
    /// The supervisor, or the command itself when started directly.
    child: tokio::process::Child,
    /// The command's PID = its process group id.
    leader: u32,
    supervised: bool,
}

/// Starts `program args` in a new process group (through the supervisor when one is
/// registered, see the module docs). `setup` sets stdio, environment and working
/// directory; they apply to the command. Errors are the command's own: a missing program
/// is `NotFound`, as with a direct spawn.
pub fn spawn_group(
    program: &str,
    args: &[String],
    setup: impl FnOnce(&mut tokio::process::Command),
) -> std::io::Result<Group> {
    match SUPERVISOR.get() {
        // A binary rebuilt or deleted while running: start directly rather than fail.
        Some(exe) if exe.is_file() => spawn_supervised(exe, program, args, setup),
        _ => spawn_direct(program, args, setup),
    }
}

/// Starts `program args` directly (no supervisor) in a new process group, SIGKILLed when
/// this process dies: for mcpscript's own worker processes, which supervise their children.
pub fn spawn_direct(
    program: impl AsRef<std::ffi::OsStr>,
    args: &[String],
    setup: impl FnOnce(&mut tokio::process::Command),
) -> std::io::Result<Group> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    setup(&mut cmd);
    // Out of the terminal's process group: Ctrl-C reaches mcpscript only, which then
    // stops its children in order.
    cmd.process_group(0).kill_on_drop(true);
    die_with_parent(&mut cmd);
    let child = cmd.spawn()?;
    let leader = child.id().unwrap_or(0);
    Ok(Group { child, leader, supervised: false })
}

fn spawn_supervised(
    exe: &std::path::Path,
    program: &str,
    args: &[String],
    setup: impl FnOnce(&mut tokio::process::Command),
) -> std::io::Result<Group> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two new descriptors into the array, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if fds[1] < 3 {
        // This process was started with stdio closed: keep the report clear of the
        // descriptors the child's stdio is placed on.
        // SAFETY: duplicates a descriptor we own (close-on-exec) and closes the original.
        unsafe {
            let high = libc::fcntl(fds[1], libc::F_DUPFD_CLOEXEC, 3);
            libc::close(fds[1]);
            if high < 0 {
                libc::close(fds[0]);
                return Err(std::io::Error::last_os_error());
            }
            fds[1] = high;
        }
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let report_fd = write.as_raw_fd();
    let mut cmd = tokio::process::Command::new(exe);
    setup(&mut cmd);
    cmd.arg("reap")
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--report-fd")
        .arg(report_fd.to_string())
        .arg("--")
        .arg(program)
        .args(args)
        .process_group(0)
        // Never SIGKILL the supervisor alone: that would orphan the group. `Group` kills
        // the group; the supervisor then exits by itself and tokio reaps it.
        .kill_on_drop(false);
    // SAFETY: fcntl is async-signal-safe and changes the child only (the close-on-exec
    // flag is per process, so the parent's copy keeps it). The supervisor asks for its
    // parent-death signal itself, then checks that `--parent` still is its parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(report_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(write);
    match read_report(read).as_deref().and_then(|r| r.split_once(' ')) {
        Some(("pid", n)) => {
            if let Some(leader) = n.parse::<u32>().ok().filter(|n| *n > 0) {
                return Ok(Group { child, leader, supervised: true });
            }
        }
        // The supervisor could not start the command and exits at once; tokio reaps it.
        Some(("err", n)) => return Err(std::io::Error::from_raw_os_error(n.parse().unwrap_or(libc::EIO))),
        _ => {}
    }
    let _ = child.start_kill();
    Err(std::io::Error::other(format!(
        "the process supervisor `{} reap` did not report the command's PID",
        exe.display()
    )))
}

/// Reads the supervisor's one-line report (`pid N` or `err ERRNO`) until it closes the
/// pipe, at most [`REPORT_WAIT`].
fn read_report(fd: std::os::fd::OwnedFd) -> Option<String> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + REPORT_WAIT;
    let mut file = std::fs::File::from(fd);
    let mut buf = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll reads and writes the one pollfd we pass.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as libc::c_int) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return None;
        }
        let mut chunk = [0u8; 64];
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => {
                buf.extend_from_slice(&chunk[..k]);
                if buf.ends_with(b"\n") || buf.len() > 256 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(buf).ok().map(|s| s.trim().to_string())
}

impl Group {
    /// The command's PID, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.leader
    }

    /// Whether it runs through the supervisor.
    pub fn supervised(&self) -> bool {
        self.supervised
    }

    /// Whether it still runs (a stopped one counts as running).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it ended, if it did (the supervisor mirrors the command's status).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits until it ended.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }

    /// Sends `sig` to the whole group if it has not been reaped yet; true when sent.
    pub fn signal(&mut self, sig: libc::c_int) -> bool {
        if self.leader == 0 || !self.running() {
            return false;
        }
        // SAFETY: killpg only sends a signal. The group id is our unreaped child's PID, or
        // (supervised) that of the supervisor's child, which the supervisor never reaps:
        // the number cannot have been reused while the supervisor runs.
        unsafe { libc::killpg(self.leader as libc::pid_t, sig) == 0 }
    }

    /// SIGKILLs the group without waiting.
    pub fn start_kill(&mut self) -> bool {
        self.signal(libc::SIGKILL)
    }

    /// SIGKILLs the group and waits (at most 5 s) until it is reaped.
    pub async fn kill(&mut self) {
        if self.signal(libc::SIGKILL) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.child.wait()).await;
        }
    }

    pub fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }
}

impl Drop for Group {
    /// SIGKILLs the whole group; tokio reaps the child in the background.
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// `mcpscript reap --parent PID --report-fd FD -- COMMAND ARGS...` (hidden): the
/// supervisor described in the module docs. Never returns.
pub fn reap(parent: u32, report_fd: i32, command: &[String]) -> ! {
    // SAFETY: plain libc calls on this process's own signal mask, dispositions and fds.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    let forwarded = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];
    unsafe {
        libc::sigemptyset(&mut set);
        for s in forwarded.iter().chain(&[libc::SIGCHLD, PARENT_GONE]) {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, PARENT_GONE);
        libc::fcntl(report_fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    let report = |line: String| {
        // SAFETY: writes our own bytes to the report pipe, then closes it.
        unsafe {
            libc::write(report_fd, line.as_ptr().cast(), line.len());
            libc::close(report_fd);
        }
    };
    let parent_gone = || unsafe { libc::getppid() } as u32 != parent;
    let Some((program, args)) = command.split_first() else {
        report(format!("err {}\n", libc::ENOENT));
        std::process::exit(127);
    };
    if parent_gone() {
        report(format!("err {}\n", libc::ECHILD));
        std::process::exit(127);
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).process_group(0);
    // SAFETY: async-signal-safe calls between fork and exec, on the child only: it starts
    // with no blocked signals and dies if this supervisor is SIGKILLed.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report(format!("err {}\n", e.raw_os_error().unwrap_or(libc::EIO)));
            std::process::exit(127);
        }
    };
    let pgid = child.id() as libc::pid_t;
    report(format!("pid {pgid}\n"));
    // The command has its own copies of stdin, stdout and stderr: holding ours would delay
    // the end of its output until this process exits.
    // SAFETY: replaces our fds 0-2 with /dev/null; nothing else uses them.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    let status = loop {
        // WNOWAIT: the command stays a zombie, so its PID (the group id) is not reused
        // while this process still signals the group; when this process exits, init
        // reaps it.
        // SAFETY: waitid fills the zeroed siginfo we pass.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(libc::P_PID, pgid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
        };
        if r != 0 {
            break None;
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed).
        if unsafe { info.si_pid() } != 0 {
            break Some((info.si_code, unsafe { info.si_status() }));
        }
        if parent_gone() {
            // SAFETY: signals our own child's group.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
        }
        let wait = libc::timespec { tv_sec: 1, tv_nsec: 0 };
        // SAFETY: sigtimedwait reads the set and fills the siginfo we pass.
        let sig = unsafe { libc::sigtimedwait(&set, &mut info, &wait) };
        if forwarded.contains(&sig) {
            // SAFETY: as above.
            unsafe { libc::killpg(pgid, sig) };
        }
    };
    // Whatever is left of the group (the command is a zombie or gone) dies with it.
    // SAFETY: as above.
    unsafe { libc::killpg(pgid, libc::SIGKILL) };
    match status {
        Some((libc::CLD_EXITED, code)) => std::process::exit(code),
        Some((_, sig)) => exit_by_signal(sig),
        None => std::process::exit(1),
    }
}

/// Ends this process by `sig` (without a core dump), so the parent sees the status the
/// command had.
fn exit_by_signal(sig: libc::c_int) -> ! {
    // SAFETY: resets our own limits, mask and disposition, then signals ourselves.
    unsafe {
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(sig, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
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
