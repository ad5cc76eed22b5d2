//! The terminal while the live screen is up: raw mode and the alternate
//! screen, keys read on a thread of their own (the session's loop never
//! waits on the terminal), stderr held back so no notice scribbles over the
//! screen, and the terminal restored on every way out — [`Term`]'s drop, a
//! panic (hook), SIGINT/SIGTERM/SIGHUP (the session ends, or [`catch_signals`]
//! for a replay) — before anything is printed on the normal screen.

use std::{
    collections::VecDeque,
    io::{self, BufRead, Stdout, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicBool, AtomicI32, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use crossterm::{
    cursor, event, execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{Frame, Terminal, backend::CrosstermBackend};

/// The screen is up (raw mode, alternate screen).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The real stderr while it is held back (-1: not held).
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);
/// A signal asked to stop (replay: [`catch_signals`]).
static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// Lines of stderr kept while held back.
const HELD_LINES: usize = 200;

/// Puts the terminal back: stderr, raw mode, the normal screen, the cursor.
/// Idempotent; async-signal-unsafe parts only run once.
pub fn restore() {
    let fd = SAVED_STDERR.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: `fd` is the duplicate of stderr made in `hold_stderr`, owned here.
        unsafe {
            libc::dup2(fd, 2);
            libc::close(fd);
        }
    }
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    }
}

/// A panic restores the terminal before its message is printed (on the
/// real stderr, on the normal screen).
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP set a flag the screen polls (a replay has no
/// session catching them): it then ends as `q` does.
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// What the terminal sent.
pub type Events = mpsc::Receiver<event::Event>;

pub struct Term {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    pub events: Events,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    held: Option<Held>,
}

/// stderr going to a pipe whose lines are kept, while the screen is up.
struct Held {
    lines: Arc<Mutex<VecDeque<String>>>,
    reader: JoinHandle<()>,
}

impl Term {
    pub fn enter() -> io::Result<Term> {
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        if let Err(e) = execute!(io::stdout(), EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(e);
            }
        };
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("netdrop-keys".into())
                .spawn(move || read_keys(&tx, &stop))?
        };
        let held = hold_stderr().ok();
        Ok(Term {
            terminal,
            events,
            stop,
            reader: Some(reader),
            held,
        })
    }

    pub fn draw(&mut self, f: impl FnOnce(&mut Frame)) -> io::Result<()> {
        self.terminal.draw(f).map(|_| ())
    }

    /// Lines written to stderr since the last call (while held back).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.held
            .as_ref()
            .map(|h| {
                h.lines
                    .lock()
                    .map(|mut l| l.drain(..).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Back to the normal screen; what was written to stderr meanwhile is
    /// written there now.
    pub fn leave(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        restore();
        // The key reader sees `stop` within 50 ms, but a terminal that hung
        // up can keep crossterm reading end-of-file for good: wait a little,
        // never for ever.
        if let Some(r) = self.reader.take() {
            for _ in 0..20 {
                if r.is_finished() {
                    let _ = r.join();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if let Some(h) = self.held.take() {
            // The pipe's last writer (fd 2) is closed: its reader ends soon;
            // a child still holding it must not keep netdrop waiting.
            for _ in 0..20 {
                if h.reader.is_finished() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let lines: Vec<String> = h
                .lines
                .lock()
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            let mut err = io::stderr().lock();
            for l in lines {
                let _ = writeln!(err, "{l}");
            }
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Keys (and resizes) to the channel until `stop`, never blocking more than
/// 50 ms: the thread ends with the screen.
fn read_keys(tx: &mpsc::Sender<event::Event>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        // A terminal that went away (a closed pty, a dropped ssh): the
        // thread ends, and the screen, seeing its channel closed, quits.
        if terminal_hung_up() {
            return;
        }
        match event::poll(Duration::from_millis(50)) {
            Ok(true) => match event::read() {
                Ok(ev) => {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// Standard input reports a hang-up (or is no longer valid).
fn terminal_hung_up() -> bool {
    let mut fd = libc::pollfd {
        fd: 0,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd, no wait.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// fd 2 onto a pipe read by a thread (the last [`HELD_LINES`] lines kept).
fn hold_stderr() -> io::Result<Held> {
    let mut fds = [0; 2];
    // SAFETY: a plain pipe2(2) into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: dup(2) of stderr; the copy is owned by SAVED_STDERR until `restore`.
    let saved = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if saved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd 2 now refers to the pipe; `w` is closed when dropped below.
    if unsafe { libc::dup2(w.as_raw_fd(), 2) } < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: `saved` is ours.
        unsafe { libc::close(saved) };
        return Err(e);
    }
    SAVED_STDERR.store(saved, Ordering::SeqCst);
    drop(w);
    let lines = Arc::new(Mutex::new(VecDeque::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::Builder::new()
            .name("netdrop-stderr".into())
            .spawn(move || {
                for line in io::BufReader::new(std::fs::File::from(r)).lines() {
                    let Ok(line) = line else { return };
                    if let Ok(mut l) = lines.lock() {
                        if l.len() >= HELD_LINES {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            })?
    };
    Ok(Held { lines, reader })
}
