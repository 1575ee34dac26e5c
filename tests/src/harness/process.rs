//! A real child process under test: spawned with args and environment, its stdout and stderr
//! captured line by line on background threads, its `listening proto=… name=… addr=…` and
//! `ready` lines parsed (human or JSON log format), signalled with SIGTERM/SIGHUP/SIGSTOP,
//! and killed on drop. The captured log is printed on drop when the test is panicking or
//! when `CDN_TEST_LOG=1`. Children do not inherit `CDN_*` environment variables (they would
//! be read as config overrides); pass what a child needs explicitly.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

pub use rustix::process::Signal;

use super::patience::scaled;

/// One `listening` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// `udp`, `tcp` or `http`.
    pub proto: String,
    /// What the socket is for (`dns`, `admin`, `http`, …).
    pub name: String,
    /// The bound address.
    pub addr: SocketAddr,
}

/// A recognised log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `listening proto=… name=… addr=…`.
    Listening(Listening),
    /// `ready`.
    Ready,
}

/// Recognise a `listening` or `ready` line in either log format.
pub fn parse_marker(line: &str) -> Option<Marker> {
    let line = strip_ansi(line);
    let line = line.trim();
    if line.starts_with('{') {
        return parse_json_marker(line);
    }
    // Human format: `<timestamp> <LEVEL> [span: ...] <message> [key=value ...]`.
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let level = tokens
        .iter()
        .position(|t| matches!(*t, "TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR"))?;
    let mut rest = tokens[level + 1..]
        .iter()
        .copied()
        .skip_while(|t| t.ends_with(':'));
    let message = rest.next()?;
    let fields: Vec<(&str, &str)> = rest
        .map(|t| t.split_once('=').unwrap_or((t, "")))
        .map(|(k, v)| (k, v.trim_matches('"')))
        .collect();
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    match message {
        "ready" => Some(Marker::Ready),
        "listening" => Some(Marker::Listening(Listening {
            proto: field("proto")?.to_string(),
            name: field("name")?.to_string(),
            addr: field("addr")?.parse().ok()?,
        })),
        _ => None,
    }
}

fn parse_json_marker(line: &str) -> Option<Marker> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let get = |k: &str| {
        v.get(k)
            .or_else(|| v.get("fields").and_then(|f| f.get(k)))
            .and_then(|x| x.as_str())
    };
    match get("message")? {
        "ready" => Some(Marker::Ready),
        "listening" => Some(Marker::Listening(Listening {
            proto: get("proto")?.to_string(),
            name: get("name")?.to_string(),
            addr: get("addr")?.parse().ok()?,
        })),
        _ => None,
    }
}

/// Remove ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Default)]
struct Captured {
    lines: Vec<String>,
    listening: Vec<Listening>,
    ready: bool,
    /// Both output streams reached EOF (the process exited or closed them).
    streams_closed: usize,
}

/// Whether captured lines are also echoed to our stderr (prefixed with the process name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Echo {
    /// Capture only (printed on drop when a test panics or `CDN_TEST_LOG=1`).
    #[default]
    None,
    /// Echo WARN and ERROR lines, and anything that is not a log line (panics).
    Problems,
    /// Echo everything.
    All,
}

impl Echo {
    fn wants(self, line: &str) -> bool {
        match self {
            Echo::None => false,
            Echo::All => true,
            Echo::Problems => {
                let l = strip_ansi(line);
                let is_log = l.contains(" INFO ") || l.contains(" DEBUG ") || l.contains(" TRACE ");
                !is_log || l.contains(" WARN ") || l.contains(" ERROR ")
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Captured>,
    changed: Condvar,
    echo: Echo,
    name: String,
}

impl Shared {
    fn push(&self, line: String) {
        if self.echo.wants(&line) {
            eprintln!("[{}] {line}", self.name);
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match parse_marker(&line) {
            Some(Marker::Ready) => st.ready = true,
            Some(Marker::Listening(l)) => st.listening.push(l),
            None => {}
        }
        st.lines.push(line);
        self.changed.notify_all();
    }

    fn close_stream(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.streams_closed += 1;
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running child process. Killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
    graceful_drop: Option<Duration>,
}

impl Process {
    /// Spawn `binary` with `args` and extra `env`, naming it `name` in messages and logs.
    pub fn spawn(
        name: &str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::spawn_with(name, binary, args, env, Echo::None)
    }

    /// [`Process::spawn`] with live echo of its output.
    pub fn spawn_with(
        name: &str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        echo: Echo,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(binary);
        // Hermetic children: inherited `CDN_*` variables (the harness's own `CDN_TEST_*`
        // settings, a developer's overrides) would be read as config overrides.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy()
                .starts_with(cdn_shared::config::ENV_PREFIX)
            {
                cmd.env_remove(k);
            }
        }
        // As the deploy units run them (deploy/systemd/cdn-edge.service): glibc's mmap
        // threshold pinned, so freed large bodies go back to the system.
        cmd.env("MALLOC_MMAP_THRESHOLD_", "131072");
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {} {}", binary.display(), args.join(" ")))?;
        let shared = Arc::new(Shared {
            echo,
            name: name.to_string(),
            ..Shared::default()
        });
        let mut readers = Vec::new();
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for (stream, tag) in [(out, "stdout"), (err, "stderr")] {
            let Some(stream) = stream else { continue };
            let sh = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{tag}"))
                .spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let line = String::from_utf8_lossy(&buf);
                                sh.push(line.trim_end_matches(['\n', '\r']).to_string());
                            }
                        }
                    }
                    sh.close_stream();
                })?;
            readers.push(handle);
        }
        Ok(Self {
            name: name.to_string(),
            child,
            shared,
            readers,
            exit: None,
            graceful_drop: None,
        })
    }

    /// On drop, send SIGTERM and wait up to `grace` before SIGKILL (for a process that has
    /// children of its own to stop, like the `fleet` binary). Default: SIGKILL at once.
    pub fn graceful_drop(&mut self, grace: Duration) {
        self.graceful_drop = Some(grace);
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (at most `timeout`, scaled by patience) for the `ready` line. Fails early with the
    /// log when the process exits first.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + scaled(timeout);
        let mut st = self.shared.lock();
        loop {
            if st.ready {
                return Ok(());
            }
            if st.streams_closed >= self.readers.len() {
                drop(st);
                let status = self.wait_exit(Duration::from_secs(2)).ok();
                bail!(
                    "{} exited before `ready` ({}):\n{}",
                    self.name,
                    status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "still running".into()),
                    self.log_tail(40)
                );
            }
            let now = Instant::now();
            if now >= deadline {
                drop(st);
                bail!(
                    "{} not ready after {:.1?}:\n{}",
                    self.name,
                    scaled(timeout),
                    self.log_tail(40)
                );
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the `ready` line has been seen.
    pub fn is_ready(&self) -> bool {
        self.shared.lock().ready
    }

    /// The address of the socket logged as `listening proto=<proto> name=<name>`.
    pub fn addr(&self, proto: &str, name: &str) -> anyhow::Result<SocketAddr> {
        let st = self.shared.lock();
        st.listening
            .iter()
            .find(|l| l.proto == proto && l.name == name)
            .map(|l| l.addr)
            .ok_or_else(|| {
                anyhow!(
                    "{} logged no `listening proto={proto} name={name}` line (seen: {:?})",
                    self.name,
                    st.listening
                )
            })
    }

    /// Every `listening` line seen so far.
    pub fn listening(&self) -> Vec<Listening> {
        self.shared.lock().listening.clone()
    }

    /// Wait for a log line containing `needle` (at most `timeout`, scaled) and return it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + scaled(timeout);
        let mut st = self.shared.lock();
        loop {
            if let Some(l) = st.lines.iter().find(|l| l.contains(needle)) {
                return Ok(l.clone());
            }
            let now = Instant::now();
            if now >= deadline || st.streams_closed >= self.readers.len() {
                drop(st);
                bail!(
                    "{}: no log line containing `{needle}`:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every captured line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.shared.lock().lines.clone()
    }

    /// The last `n` captured lines, prefixed with the process name.
    pub fn log_tail(&self, n: usize) -> String {
        let st = self.shared.lock();
        let skip = st.lines.len().saturating_sub(n);
        st.lines[skip..]
            .iter()
            .map(|l| format!("[{}] {l}", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Send `sig` (e.g. [`Signal::TERM`], [`Signal::HUP`], [`Signal::STOP`], [`Signal::CONT`]).
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        signal_pid(self.child.id(), sig).with_context(|| format!("signalling {}", self.name))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(st)) => {
                self.exit = Some(st);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Wait for the process to exit (at most `timeout`, scaled). After it exited, also wait
    /// (within the same deadline) for its output streams to reach EOF, so [`Process::log_lines`]
    /// then holds everything it wrote.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + scaled(timeout);
        let status = loop {
            if let Some(st) = self.exit {
                break st;
            }
            if let Some(st) = self.child.try_wait()? {
                self.exit = Some(st);
                break st;
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {:.1?}", self.name, scaled(timeout));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // A grandchild holding the pipes open could keep them from closing: give up at the
        // deadline then (the status is still right; the log may lack its last lines).
        let mut st = self.shared.lock();
        while st.streams_closed < self.readers.len() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(status)
    }

    /// The lines captured after the `ready` line (empty when it has not been seen).
    pub fn lines_after_ready(&self) -> Vec<String> {
        let st = self.shared.lock();
        match st
            .lines
            .iter()
            .position(|l| parse_marker(l) == Some(Marker::Ready))
        {
            Some(i) => st.lines[i + 1..].to_vec(),
            None => Vec::new(),
        }
    }

    /// SIGKILL and reap (no grace).
    pub fn kill(&mut self) {
        if self.is_running() {
            // SIGCONT first, in case a test stopped it.
            let _ = self.signal(Signal::CONT);
            let _ = self.child.kill();
        }
        if let Ok(st) = self.child.wait() {
            self.exit = Some(st);
        }
    }

    /// The whole captured log, prefixed with the process name.
    pub fn log_text(&self) -> String {
        self.log_tail(usize::MAX)
    }
}

/// Send `sig` to the process `pid` (e.g. SIGHUP to the test process itself, to exercise a
/// handler it installed).
pub fn signal_pid(pid: u32, sig: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| anyhow!("bad pid {pid}"))?;
    let p = rustix::process::Pid::from_raw(raw).ok_or_else(|| anyhow!("bad pid {pid}"))?;
    rustix::process::kill_process(p, sig).with_context(|| format!("sending {sig:?} to pid {pid}"))
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(grace) = self.graceful_drop {
            if self.is_running() && self.signal(Signal::TERM).is_ok() {
                let _ = self.wait_exit(grace);
            }
        }
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let wanted = std::env::var("CDN_TEST_LOG").is_ok_and(|v| v == "1");
        if std::thread::panicking() || wanted {
            eprintln!(
                "----- log of {} (pid {}, {}) -----\n{}\n----- end of {} -----",
                self.name,
                self.child.id(),
                self.exit
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown exit".into()),
                self.log_text(),
                self.name
            );
        }
    }
}

/// Start a process that must listen on the ports it had before (`start`), and wait until it
/// is `ready`. While it was down the OS may have given one of its ports to another process
/// ([`lost_its_port`]); then it is started again every 250 ms for up to 15 s. Attempts that
/// failed go to `retired` (their logs are printed if the test fails later).
pub fn start_on_its_ports(
    mut start: impl FnMut() -> anyhow::Result<Process>,
    mut ready: impl FnMut(&mut Process) -> anyhow::Result<()>,
    retired: &mut Vec<Process>,
) -> anyhow::Result<Process> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut p = start()?;
        let result = ready(&mut p);
        match result {
            Ok(()) => return Ok(p),
            Err(e) => {
                retired.push(p);
                if !lost_its_port(&e) || Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// Whether a process failed to start because one of its listen addresses was taken (its log,
/// which the start error carries, says "address already in use": the OS's words, as Rust and Go
/// servers print them). A process restarted on the port it had can meet this when the OS gave
/// the port to another process meanwhile (a bind to port 0, or an outgoing connection).
pub fn lost_its_port(e: &anyhow::Error) -> bool {
    format!("{e:#}")
        .to_ascii_lowercase()
        .contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_are_recognised() {
        let l = "2026-11-22T01:19:28.600365Z  INFO listening proto=\"udp\" name=\"dns\" addr=127.0.0.1:36751";
        assert_eq!(
            parse_marker(l),
            Some(Marker::Listening(Listening {
                proto: "udp".into(),
                name: "dns".into(),
                addr: "127.0.0.1:36751".parse().unwrap(),
            }))
        );
        let l = "2026-11-22T01:19:28.600384Z  INFO ready process=\"demo-origin\"";
        assert_eq!(parse_marker(l), Some(Marker::Ready));
        let l =
            "2026-11-22T01:19:28Z  INFO run{x=1}: listening proto=http name=admin addr=[::1]:80";
        assert!(matches!(parse_marker(l), Some(Marker::Listening(x)) if x.name == "admin"));
        let colored = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ready";
        assert_eq!(parse_marker(colored), Some(Marker::Ready));
        assert_eq!(parse_marker("2026 INFO not ready yet"), None);
        assert_eq!(parse_marker("2026 INFO listening proto=udp"), None);
        assert_eq!(parse_marker("plain text ready"), None);
    }

    #[test]
    fn json_lines_are_recognised() {
        let l = r#"{"timestamp":"x","level":"INFO","message":"listening","proto":"tcp","name":"dns","addr":"127.0.0.1:53"}"#;
        assert!(matches!(parse_marker(l), Some(Marker::Listening(x)) if x.proto == "tcp"));
        let l = r#"{"level":"INFO","fields":{"message":"ready"}}"#;
        assert_eq!(parse_marker(l), Some(Marker::Ready));
        assert_eq!(parse_marker(r#"{"message":"other"}"#), None);
    }

    #[test]
    fn a_process_is_captured_signalled_and_reaped() {
        let script = "echo 'x INFO listening proto=http name=web addr=127.0.0.1:9'; \
                      echo 'x INFO ready'; echo after; echo noise 1>&2; exec sleep 30";
        let mut p = Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &[],
        )
        .unwrap();
        p.wait_ready(Duration::from_secs(10)).unwrap();
        assert_eq!(
            p.addr("http", "web").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(p.addr("http", "nope").is_err());
        assert!(p.is_running());
        p.wait_for_line("after", Duration::from_secs(10)).unwrap();
        // stdout is ordered; stderr's `noise` may land on either side of `ready`.
        let after = p.lines_after_ready();
        assert!(after.contains(&"after".to_string()), "{after:?}");
        assert!(!after.iter().any(|l| l.contains("listening")), "{after:?}");
        p.signal(Signal::TERM).unwrap();
        let st = p.wait_exit(Duration::from_secs(10)).unwrap();
        assert!(!st.success());
    }

    #[test]
    fn wait_exit_returns_with_the_whole_log() {
        let script = "echo 'x INFO ready'; for i in 1 2 3; do echo line-$i; done; exit 3";
        let mut p = Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &[],
        )
        .unwrap();
        let st = p.wait_exit(Duration::from_secs(10)).unwrap();
        assert_eq!(st.code(), Some(3));
        assert_eq!(p.lines_after_ready(), ["line-1", "line-2", "line-3"]);
    }

    #[test]
    fn early_exit_is_reported_with_the_log() {
        let mut p = Process::spawn(
            "sh",
            Path::new("/bin/sh"),
            &["-c".into(), "echo boom-happened 1>&2; exit 64".into()],
            &[],
        )
        .unwrap();
        let err = p.wait_ready(Duration::from_secs(10)).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("boom-happened"), "{text}");
        assert!(text.contains("64"), "{text}");
    }

    #[test]
    fn a_taken_port_is_told_from_other_start_failures() {
        let rust = anyhow::anyhow!("edge exited before `ready`:\n[edge] ERROR cannot bind error=Address already in use (os error 98)");
        let go = anyhow::anyhow!(
            "nats-1: no log line:\n[nats] listen tcp 127.0.0.1:4222: bind: address already in use"
        );
        assert!(lost_its_port(&rust) && lost_its_port(&go));
        assert!(!lost_its_port(&anyhow::anyhow!(
            "exited before `ready`: config error"
        )));
    }
}
