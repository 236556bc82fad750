//! The command's output: streamed live (to the terminal, or to stderr under `--json`) and to the
//! log file, and kept in memory as head + tail within the cap, because pytest's summary is the
//! last line and a traceback's cause the first.
//!
//! Invariant: nothing here waits unbounded for end-of-file. A grandchild can hold the pipes open
//! for ever (cpython #76116, nextest #15), so the runner waits on process exit and then gives the
//! pumps a bounded drain; a pump that is still reading after that is told to stop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::libc;

use super::spec::Echo;

/// How often a pump looks at its stop flag while the pipe is quiet.
const POLL_MS: libc::c_int = 50;

/// Output kept within a byte cap: the first quarter and the last three quarters of the cap.
#[derive(Debug)]
pub(crate) struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    pub(crate) fn new(cap: u64) -> Capture {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let head_cap = cap / 4;
        Capture {
            head_cap,
            tail_cap: cap - head_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend(bytes[bytes.len() - self.tail_cap..].iter().copied());
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes.iter().copied());
    }

    /// The kept output; when some was dropped, `[… N bytes cut …]` on a line of its own between
    /// head and tail, which are trimmed to whole lines where they have any.
    pub(crate) fn render(&self) -> String {
        let (a, b) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(a.len() + b.len());
        tail.extend_from_slice(a);
        tail.extend_from_slice(b);
        let kept = (self.head.len() + tail.len()) as u64;
        if self.total <= kept {
            let mut whole = self.head.clone();
            whole.extend_from_slice(&tail);
            return String::from_utf8_lossy(&whole).into_owned();
        }
        let head_end = self
            .head
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(self.head.len(), |i| i + 1);
        let tail_start = tail
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| i + 1)
            .filter(|i| *i < tail.len())
            .unwrap_or(0);
        let shown = (head_end + tail.len() - tail_start) as u64;
        let mut out = String::from_utf8_lossy(&self.head[..head_end]).into_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("[… {} bytes cut …]\n", self.total - shown));
        out.push_str(&String::from_utf8_lossy(&tail[tail_start..]));
        out
    }
}

/// Which of orch's streams a pump echoes to.
#[derive(Clone, Copy)]
enum Sink {
    Stdout,
    Stderr,
    Nowhere,
    Progress,
}

/// The progress display of `Echo::Progress`.
pub(crate) struct Progress {
    label: String,
    timeout: Option<Duration>,
    start: std::time::Instant,
    tty: bool,
    last_line: String,
    partial: Vec<u8>,
    drawn: Option<std::time::Instant>,
}

impl Progress {
    pub(crate) fn new(spec: &super::spec::RunSpec) -> Option<Progress> {
        use std::io::IsTerminal;
        (spec.echo == Echo::Progress).then(|| Progress {
            label: spec.label.clone().unwrap_or_else(|| "run".into()),
            timeout: spec.timeout,
            start: std::time::Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_line: String::new(),
            partial: Vec::new(),
            drawn: None,
        })
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if self.tty {
                if !line.trim().is_empty() {
                    self.last_line = line;
                }
            } else {
                let now = crate::ui::timestamp(crate::host::wall_ms());
                // The command's output is untrusted: echoed escaped, one line per line.
                eprintln!("{now} {} | {}", self.label, crate::ui::plain(&line));
            }
        }
        self.tick(false);
    }

    /// Redraws the status line on a terminal, at most every 100 ms (or at once when `force`).
    fn tick(&mut self, force: bool) {
        if !self.tty {
            return;
        }
        let due = self
            .drawn
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !(force || due) {
            return;
        }
        self.drawn = Some(std::time::Instant::now());
        let elapsed = self.start.elapsed().as_secs();
        let budget = self
            .timeout
            .map_or_else(|| "no timeout".to_string(), |t| format!("{}s", t.as_secs()));
        let line: String = crate::ui::plain(&self.last_line).chars().take(80).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} {elapsed}s / {budget} | {line}",
            self.label
        );
        let _ = err.flush();
    }

    fn clear(&mut self) {
        if self.tty && self.drawn.is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// The pump of one run: a thread that copies the command's stdout and stderr as they come.
pub(crate) struct Pumps {
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
    done: Receiver<()>,
    running: bool,
}

impl Pumps {
    /// Starts pumping `stdout` and `stderr` (the read ends of the command's pipes).
    pub(crate) fn start(
        stdout: OwnedFd,
        stderr: OwnedFd,
        echo: Echo,
        log: Option<File>,
        cap: u64,
        progress: Option<Progress>,
    ) -> Pumps {
        let capture = Arc::new(Mutex::new(Capture::new(cap)));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, done) = mpsc::channel();
        let (out_sink, err_sink) = match echo {
            Echo::Terminal => (Sink::Stdout, Sink::Stderr),
            Echo::Stderr => (Sink::Stderr, Sink::Stderr),
            Echo::Silent => (Sink::Nowhere, Sink::Nowhere),
            Echo::Progress => (Sink::Progress, Sink::Progress),
        };
        let pump = Pump {
            progress,
            streams: vec![(stdout, out_sink), (stderr, err_sink)],
            log,
            capture: Arc::clone(&capture),
            stop: Arc::clone(&stop),
            done: tx,
        };
        let running = std::thread::Builder::new()
            .name("orch-output".into())
            .spawn(move || pump.run())
            .is_ok();
        Pumps {
            capture,
            stop,
            done,
            running,
        }
    }

    /// Waits up to `drain` for both pipes to reach end-of-file, stops the pump, and returns the
    /// capped output.
    pub(crate) fn finish(self, drain: Duration) -> String {
        if self.running {
            let _ = self.done.recv_timeout(drain);
        }
        self.stop.store(true, Ordering::SeqCst);
        let capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        capture.render()
    }
}

struct Pump {
    progress: Option<Progress>,
    streams: Vec<(OwnedFd, Sink)>,
    log: Option<File>,
    capture: Arc<Mutex<Capture>>,
    stop: Arc<AtomicBool>,
    done: Sender<()>,
}

impl Pump {
    fn run(mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.streams.is_empty() && !self.stop.load(Ordering::SeqCst) {
            let mut fds: Vec<libc::pollfd> = self
                .streams
                .iter()
                .map(|(fd, _)| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: a valid array of pollfds, its true length.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
            if ready < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                break;
            }
            if ready <= 0 {
                if let Some(progress) = &mut self.progress {
                    progress.tick(false);
                }
                continue;
            }
            let mut closed = Vec::new();
            for (i, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                // SAFETY: reads into a buffer we own, within its length.
                let n = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    let sink = self.streams[i].1;
                    let kept = self.deliver(sink, &buf[..n as usize]);
                    self.streams[i].1 = kept;
                } else if n == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                    closed.push(i);
                }
            }
            for i in closed.into_iter().rev() {
                self.streams.remove(i);
            }
        }
        if let Some(progress) = &mut self.progress {
            progress.clear();
        }
        let _ = self.done.send(());
    }

    /// Captures, logs and echoes one chunk; returns the sink to use from now on.
    fn deliver(&mut self, sink: Sink, bytes: &[u8]) -> Sink {
        self.capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bytes);
        if let Some(log) = &mut self.log {
            let _ = log.write_all(bytes);
        }
        // A closed reader (`orch exec … | head`) stops the echo, never the run.
        let echoed = match sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|_| out.flush())
            }
            Sink::Stderr => std::io::stderr().lock().write_all(bytes),
            Sink::Nowhere => Ok(()),
            Sink::Progress => {
                if let Some(progress) = &mut self.progress {
                    progress.feed(bytes);
                }
                Ok(())
            }
        };
        if echoed.is_err() {
            Sink::Nowhere
        } else {
            sink
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_within_the_cap_is_kept_whole() {
        let mut c = Capture::new(100);
        c.push(b"hello\n");
        c.push(b"world\n");
        assert_eq!(c.render(), "hello\nworld\n");
    }

    #[test]
    fn output_over_the_cap_keeps_head_and_tail_around_a_marker() {
        let mut c = Capture::new(40);
        for i in 0..100 {
            c.push(format!("line {i:03}\n").as_bytes());
        }
        let text = c.render();
        assert_eq!(
            text,
            "line 000\n[… 864 bytes cut …]\nline 097\nline 098\nline 099\n"
        );
    }

    #[test]
    fn one_chunk_larger_than_the_tail_keeps_its_end() {
        let mut c = Capture::new(8);
        c.push(b"0123456789abcdef");
        assert_eq!(c.render(), "01\n[… 8 bytes cut …]\nabcdef");
    }
}
