//! `cargo xtask milvus start|stop|status`: a real Milvus 2.3.5 standalone server, no Docker.
//!
//! The PyPI package `milvus==2.3.5` ships the real standalone server binary (embedded etcd, local
//! storage) and a config template. This module
//! - creates a venv `<cache>/milvus-venv-2.3.5` with `pip install milvus==2.3.5` (once),
//! - unpacks the binaries once into `<cache>/milvus-2.3.5/bin`,
//! - renders `milvus.yaml` through the package into a **fresh data dir per run** under
//!   `target/milvus-runs/` (every `<role>.ip` = 127.0.0.1, a small graceful-stop timeout, a low
//!   `proxy.timeTickInterval` so Strong reads are cheap, authorization when asked),
//! - starts `bin/milvus run standalone` itself in its own process group, logs to
//!   `<data dir>/logs/milvus-{stdout,stderr}.log`,
//! - waits (bounded) until `http://127.0.0.1:<metrics port>/healthz` answers `OK`,
//! - stops it with SIGTERM, then SIGKILL to the whole group after [`STOP_GRACE`].
//!
//! Only one instance can run per machine: the embedded etcd binds 127.0.0.1:2379/2380.
//!
//! Library use (the `ci` task): [`MilvusServer::start`] returns a handle whose [`Drop`] stops the
//! server, so it is stopped even when the tests fail. CLI use keeps a state file
//! (`target/milvus-runs/current.env`) so `stop`/`status` work from another process.
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{cache_dir, root, run};

/// The PyPI `milvus` package (and server) version.
pub const MILVUS_VERSION: &str = "2.3.5";
/// Default user and password of a Milvus instance with authorization on.
pub const DEFAULT_USER: &str = "root";
pub const DEFAULT_PASSWORD: &str = "Milvus";
/// How long `stop` waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Authorization on (user `root`, password `Milvus`).
    pub auth: bool,
    /// `proxy.timeTickInterval` in ms: Strong reads cost about one tick (server default 200).
    pub time_tick_ms: u32,
    /// The gRPC port clients connect to.
    pub port: u16,
    /// `common.gracefulStopTimeout` in seconds (server default 1800).
    pub graceful_stop_secs: u32,
    /// How long to wait for `/healthz` before giving up.
    pub health_timeout: Duration,
    /// Data dir; `None`: a fresh one under `target/milvus-runs/`.
    pub data_dir: Option<PathBuf>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            auth: true,
            time_tick_ms: 20,
            port: 19530,
            graceful_stop_secs: 5,
            health_timeout: Duration::from_secs(120),
            data_dir: None,
        }
    }
}

/// A running server started by this process (or adopted from the state file).
#[derive(Debug)]
pub struct MilvusServer {
    child: Option<Child>,
    pid: u32,
    port: u16,
    metrics_port: u16,
    auth: bool,
    data_dir: PathBuf,
    stopped: bool,
}

impl MilvusServer {
    /// Starts a server and waits until it is healthy. Fails if one is already running here.
    pub fn start(opts: &StartOptions) -> Result<MilvusServer> {
        if let Some(state) = State::read()? {
            if process_alive(state.pid) {
                bail!(
                    "a Milvus server started by `cargo xtask milvus start` is running (pid {}, port {}); \
                     run `cargo xtask milvus stop` first",
                    state.pid,
                    state.port
                );
            }
            State::remove();
        }
        // A server that was just killed may hold its ports for a moment.
        let deadline = Instant::now() + Duration::from_secs(15);
        for (port, what) in [
            (2379, "etcd client"),
            (2380, "etcd peer"),
            (opts.port, "gRPC"),
        ] {
            while !port_free(port) {
                if Instant::now() > deadline {
                    bail!(
                        "port {port} ({what}) on 127.0.0.1 is in use: another Milvus or etcd runs on \
                         this machine (only one instance can run at a time)"
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        let py = ensure_venv()?;
        let bin_dir = ensure_binaries(&py)?;
        let data_dir = match &opts.data_dir {
            Some(d) => {
                fs::create_dir_all(d)?;
                // Absolute: the server runs with the data dir as its cwd.
                fs::canonicalize(d).with_context(|| format!("resolving {}", d.display()))?
            }
            None => fresh_data_dir()?,
        };
        render_config(&py, &data_dir, opts)?;

        let metrics_port = free_port()?;
        let logs = data_dir.join("logs");
        fs::create_dir_all(&logs)?;
        let stdout = fs::File::create(logs.join("milvus-stdout.log"))?;
        let stderr = fs::File::create(logs.join("milvus-stderr.log"))?;
        let ld_path = match std::env::var("LD_LIBRARY_PATH") {
            Ok(old) if !old.is_empty() => format!("{}:{old}", bin_dir.display()),
            _ => bin_dir.display().to_string(),
        };
        let mut cmd = Command::new(bin_dir.join("milvus"));
        cmd.args(["run", "standalone"])
            .current_dir(&data_dir)
            .env("DEPLOY_MODE", "STANDALONE")
            .env("METRICS_PORT", metrics_port.to_string())
            .env("MILVUS_RUN_DIR", data_dir.join("run"))
            .env("MILVUSCONF", data_dir.join("configs"))
            .env("LD_LIBRARY_PATH", ld_path)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Own process group: stop signals reach every thread/child, and Ctrl-C on the
            // terminal does not.
            .process_group(0);
        eprintln!(
            "starting Milvus {MILVUS_VERSION} on 127.0.0.1:{} (auth {}, time tick {} ms), data {}",
            opts.port,
            if opts.auth { "on" } else { "off" },
            opts.time_tick_ms,
            data_dir.display()
        );
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin_dir.join("milvus").display()))?;
        let mut server = MilvusServer {
            pid: child.id(),
            child: Some(child),
            port: opts.port,
            metrics_port,
            auth: opts.auth,
            data_dir,
            stopped: false,
        };
        if let Err(e) = server.wait_healthy(opts.health_timeout) {
            let tail = log_tail(&server.data_dir);
            let _ = server.stop_inner();
            return Err(e.context(format!("Milvus did not become healthy; log tail:\n{tail}")));
        }
        Ok(server)
    }

    /// The URI clients connect to (`http://127.0.0.1:<port>`).
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(user, password)` when authorization is on.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        self.auth.then_some((DEFAULT_USER, DEFAULT_PASSWORD))
    }

    /// The environment the test suites read: `SIMILE_TEST_MILVUS_URI` (+ `_USER`, `_PASSWORD`).
    pub fn test_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("SIMILE_TEST_MILVUS_URI".to_string(), self.uri())];
        if let Some((user, password)) = self.credentials() {
            env.push(("SIMILE_TEST_MILVUS_USER".to_string(), user.to_string()));
            env.push((
                "SIMILE_TEST_MILVUS_PASSWORD".to_string(),
                password.to_string(),
            ));
        }
        env
    }

    /// The run's data dir (config, logs, data).
    #[allow(dead_code)] // API for callers such as `ci`
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's process id (also its process group id).
    #[allow(dead_code)] // API for callers such as `ci`
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the server: SIGTERM to its process group, SIGKILL after [`STOP_GRACE`].
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    /// Keeps the server running after this handle is dropped (the CLI's `start`).
    pub fn detach(mut self) {
        self.stopped = true;
        self.child = None;
    }

    fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => process_alive(self.pid),
        }
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.alive() {
                bail!("the Milvus process exited during startup");
            }
            if healthz(self.metrics_port) {
                eprintln!(
                    "Milvus healthy after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "/healthz on port {} not OK after {:?}",
            self.metrics_port,
            timeout
        )
    }

    fn stop_inner(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        if !self.alive() {
            self.reap();
            return Ok(());
        }
        signal_group(self.pid, "TERM");
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            if !self.alive() {
                self.reap();
                eprintln!(
                    "Milvus stopped after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("Milvus did not stop within {STOP_GRACE:?} of SIGTERM; sending SIGKILL");
        signal_group(self.pid, "KILL");
        let start = Instant::now();
        while self.alive() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("Milvus (pid {}) survived SIGKILL", self.pid);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.reap();
        Ok(())
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for MilvusServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            eprintln!("stopping Milvus: {e:#}");
        }
    }
}

/// Starts a server in the background and records it in the state file (for `stop`, `restart`).
pub fn start_recorded(opts: &StartOptions) -> Result<MilvusServer> {
    let server = MilvusServer::start(opts)?;
    State {
        pid: server.pid,
        port: server.port,
        metrics_port: server.metrics_port,
        auth: server.auth,
        data_dir: server.data_dir.clone(),
    }
    .write()?;
    Ok(server)
}

/// Stops the server recorded in the state file; `false` when none is recorded.
pub fn stop_recorded() -> Result<bool> {
    let Some(state) = State::read()? else {
        return Ok(false);
    };
    let server = MilvusServer {
        child: None,
        pid: state.pid,
        port: state.port,
        metrics_port: state.metrics_port,
        auth: state.auth,
        data_dir: state.data_dir,
        stopped: false,
    };
    let result = server.stop();
    State::remove();
    result.map(|()| true)
}

/// Stops the recorded server and starts it again on the same data dir, port and auth (what a
/// server restart looks like to clients: the collections are still there). Waits until healthy.
pub fn restart_recorded() -> Result<MilvusServer> {
    let state = State::read()?.context(
        "no Milvus server recorded as started by `cargo xtask milvus start`: nothing to restart",
    )?;
    let opts = StartOptions {
        auth: state.auth,
        port: state.port,
        data_dir: Some(state.data_dir.clone()),
        ..StartOptions::default()
    };
    stop_recorded()?;
    start_recorded(&opts)
}

/// `cargo xtask milvus start|stop|restart|status`.
pub fn main(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        print_help();
        return Ok(());
    };
    match cmd.as_str() {
        "start" => {
            let server = start_recorded(&parse_start(rest)?)?;
            println!("{}", server.uri());
            eprintln!(
                "Milvus runs in the background (pid {}). For the tests:",
                server.pid
            );
            for (k, v) in server.test_env() {
                eprintln!("  export {k}={v}");
            }
            eprintln!("Stop it with `cargo xtask milvus stop`.");
            server.detach();
            Ok(())
        }
        "stop" => {
            if stop_recorded()? {
                println!("stopped");
            } else {
                println!("no Milvus server recorded as started by `cargo xtask milvus start`");
            }
            Ok(())
        }
        "restart" => {
            let server = restart_recorded()?;
            println!("{}", server.uri());
            server.detach();
            Ok(())
        }
        "status" => {
            match State::read()? {
                Some(state) if process_alive(state.pid) => {
                    let healthy = healthz(state.metrics_port);
                    println!(
                        "running: pid {} uri http://127.0.0.1:{} auth {} healthy {} data {}",
                        state.pid,
                        state.port,
                        state.auth,
                        healthy,
                        state.data_dir.display()
                    );
                }
                Some(state) => println!("not running (stale state for pid {})", state.pid),
                None => println!("not running"),
            }
            Ok(())
        }
        "-h" | "--help" | "help" => {
            print_help();
            Ok(())
        }
        other => bail!("unknown milvus command '{other}'; run `cargo xtask milvus help`"),
    }
}

fn print_help() {
    println!(
        "cargo xtask milvus <cmd>\n\n  start [--auth] [--port P] [--time-tick MS] [--data-dir D]   start Milvus {MILVUS_VERSION} in the background\n      (a fresh data dir under target/milvus-runs unless --data-dir reuses one, e.g. to test a restart)\n  stop                                          SIGTERM, SIGKILL after {}s\n  restart                                       stop, then start on the same data dir/port/auth\n  status",
        STOP_GRACE.as_secs()
    );
}

fn parse_start(args: &[String]) -> Result<StartOptions> {
    let mut opts = StartOptions {
        auth: false,
        ..StartOptions::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--auth" => opts.auth = true,
            "--no-auth" => opts.auth = false,
            "--port" => {
                opts.port = it
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port")?
            }
            "--time-tick" => {
                opts.time_tick_ms = it
                    .next()
                    .context("--time-tick needs a value")?
                    .parse()
                    .context("--time-tick")?
            }
            "--data-dir" => {
                opts.data_dir = Some(PathBuf::from(
                    it.next().context("--data-dir needs a value")?,
                ))
            }
            other => bail!("unknown option '{other}' for `milvus start`"),
        }
    }
    Ok(opts)
}

/// The state file of a server started from the CLI.
#[derive(Debug)]
struct State {
    pid: u32,
    port: u16,
    metrics_port: u16,
    auth: bool,
    data_dir: PathBuf,
}

impl State {
    fn path() -> PathBuf {
        runs_dir().join("current.env")
    }

    fn write(&self) -> Result<()> {
        fs::create_dir_all(runs_dir())?;
        let text = format!(
            "PID={}\nPORT={}\nMETRICS_PORT={}\nAUTH={}\nDATA_DIR={}\n",
            self.pid,
            self.port,
            self.metrics_port,
            self.auth,
            self.data_dir.display()
        );
        fs::write(Self::path(), text).context("writing the Milvus state file")
    }

    fn read() -> Result<Option<State>> {
        let Ok(text) = fs::read_to_string(Self::path()) else {
            return Ok(None);
        };
        let get = |key: &str| -> Result<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
                .with_context(|| format!("{} has no {key}", Self::path().display()))
        };
        Ok(Some(State {
            pid: get("PID")?.parse()?,
            port: get("PORT")?.parse()?,
            metrics_port: get("METRICS_PORT")?.parse()?,
            auth: get("AUTH")? == "true",
            data_dir: PathBuf::from(get("DATA_DIR")?),
        }))
    }

    fn remove() {
        let _ = fs::remove_file(Self::path());
    }
}

fn runs_dir() -> PathBuf {
    root().join("target").join("milvus-runs")
}

/// A new, empty data dir; older run dirs are deleted (dropped collections keep disk for long).
fn fresh_data_dir() -> Result<PathBuf> {
    let runs = runs_dir();
    fs::create_dir_all(&runs)?;
    for entry in fs::read_dir(&runs)?.flatten() {
        if entry.path().is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let dir = runs.join(format!("run-{stamp}-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn python() -> String {
    std::env::var("SIMILE_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// `<cache>/milvus-venv-2.3.5` with `milvus==2.3.5`; idempotent.
fn ensure_venv() -> Result<PathBuf> {
    let venv = cache_dir().join(format!("milvus-venv-{MILVUS_VERSION}"));
    let py = venv.join("bin").join("python");
    let marker = venv.join(".simile-ready");
    if marker.is_file() && py.is_file() {
        return Ok(py);
    }
    if !py.is_file() {
        fs::create_dir_all(cache_dir())?;
        run(Command::new(python()).args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&py)
        .args(["-m", "pip", "install", "-q"])
        .arg(format!("milvus=={MILVUS_VERSION}")))
    .context("pip install milvus (PyPI) into the xtask cache")?;
    fs::write(&marker, format!("milvus=={MILVUS_VERSION}\n"))?;
    Ok(py)
}

/// Unpacks the server binaries once into `<cache>/milvus-2.3.5/bin` (the package skips files whose
/// checksum is unchanged).
fn ensure_binaries(py: &Path) -> Result<PathBuf> {
    let base = cache_dir().join(format!("milvus-{MILVUS_VERSION}"));
    let bin = base.join("bin");
    if bin.join("milvus").is_file() && base.join(".unpacked").is_file() {
        return Ok(bin);
    }
    run(Command::new(py)
        .args([
            "-c",
            "import sys, milvus; milvus._initialize_data_files(sys.argv[1])",
        ])
        .arg(&base))
    .context("unpacking the Milvus binaries")?;
    fs::write(base.join(".unpacked"), MILVUS_VERSION)?;
    Ok(bin)
}

const RENDER_SCRIPT: &str = r#"
import socket, sys, milvus
data_dir, port, auth, tick, grace = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
cfg = milvus.MilvusServerConfig(data_dir=data_dir)
def try_bind_port(port):
    # Like the package's, but with SO_REUSEADDR (as the Go server binds): ports in TIME_WAIT
    # after a restart are usable.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None
cfg.try_bind_port = try_bind_port
cfg.update(proxy_port=port)
cfg.set("authorization_enabled", auth)
for role in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode"):
    cfg.set(role + ".ip", "127.0.0.1")
cfg.set("proxy.timeTickInterval", tick)
cfg.set("common.gracefulStopTimeout", grace)
cfg.resolve()
"#;

fn render_config(py: &Path, data_dir: &Path, opts: &StartOptions) -> Result<()> {
    run(Command::new(py)
        .args(["-c", RENDER_SCRIPT])
        .arg(data_dir)
        .arg(opts.port.to_string())
        .arg(if opts.auth { "1" } else { "0" })
        .arg(opts.time_tick_ms.to_string())
        .arg(opts.graceful_stop_secs.to_string()))
    .context("rendering milvus.yaml")?;
    let yaml = data_dir.join("configs").join("milvus.yaml");
    let text = fs::read_to_string(&yaml).with_context(|| format!("reading {}", yaml.display()))?;
    let want_tick = format!("timeTickInterval: {}", opts.time_tick_ms);
    if !text.contains(&want_tick) || !text.contains("ip: 127.0.0.1") {
        bail!("{} does not carry the requested settings", yaml.display());
    }
    Ok(())
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("0.0.0.0", port)).is_ok()
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// `GET /healthz` answers `OK`.
fn healthz(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.starts_with("HTTP/1.") && resp.contains(" 200 ") && resp.trim_end().ends_with("OK")
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends a signal to the process group `pgid` (the server runs in its own group).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([format!("-{signal}"), "--".to_string(), format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

fn log_tail(data_dir: &Path) -> String {
    let mut out = String::new();
    for name in ["milvus-stderr.log", "milvus-stdout.log"] {
        if let Ok(text) = fs::read_to_string(data_dir.join("logs").join(name)) {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(15);
            out.push_str(&format!("--- {name}\n{}\n", lines[from..].join("\n")));
        }
    }
    out
}
