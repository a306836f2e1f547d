//! A service binary running as a child process, so that a test or the soak can kill it without
//! warning (SIGKILL) or stop it the way an orchestrator does (SIGTERM), and read what it logs.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

pub struct Process {
    pub addr: SocketAddr,
    child: Child,
    /// Every line the process wrote so far, stdout and stderr interleaved as read.
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// The workspace's binary `name`, built in the same profile as the running executable: beside
/// it (a binary such as the benchmark) or beside its `deps/` folder (a test).
pub fn locate(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "{name} is not built beside {}: build the workspace in the same profile first \
                 (cargo build --workspace, with --release for a release binary)",
                exe.display()
            )
        })
}

/// [`locate`] for a test: panics when the binary is not built.
pub fn binary(name: &str) -> PathBuf {
    locate(name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A port nobody listens on right now (bound then released for the child to take).
fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Copies `pipe` line by line into `output`, and on to our own stderr (shown when a test fails;
/// the benchmark keeps its stdout for the report), until the process closes it.
fn collect(
    pipe: impl AsyncRead + Unpin + Send + 'static,
    name: String,
    output: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{name}] {line}");
            output.lock().expect("output").push(line);
        }
    })
}

impl Process {
    pub fn spawn(name: &str, common: &[(&str, String)], env: &[(&str, String)]) -> Self {
        Self::spawn_without(name, common, env, &[])
    }

    /// Like [`Process::spawn`], with the variables `unset` removed from the environment the
    /// process inherits (later entries of `env` win over earlier ones and over `common`).
    pub fn spawn_without(
        name: &str,
        common: &[(&str, String)],
        env: &[(&str, String)],
        unset: &[&str],
    ) -> Self {
        Self::start(name, common, env, unset).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts binary `name` listening on a free port (`HTTP_ADDR`), with `common` and then `env`
    /// set and `unset` removed from the environment it inherits; returns at once.
    pub fn start(
        name: &str,
        common: &[(&str, String)],
        env: &[(&str, String)],
        unset: &[&str],
    ) -> anyhow::Result<Self> {
        let addr = free_port().context("finding a free port")?;
        let mut command = Command::new(locate(name)?);
        command
            .env("HTTP_ADDR", addr.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(common.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for variable in unset {
            command.env_remove(variable);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let readers = vec![
            collect(stdout, name.to_owned(), output.clone()),
            collect(stderr, name.to_owned(), output.clone()),
        ];
        Ok(Self {
            addr,
            child,
            output,
            readers,
        })
    }

    /// Every line the process has written so far (stdout and stderr).
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().expect("output").clone()
    }

    /// Waits until the process has written a line that `matches`; returns it.
    pub async fn wait_for_line(
        &self,
        what: &str,
        deadline: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        crate::wait::until(what, deadline, || async {
            self.lines().into_iter().find(|line| matches(line))
        })
        .await
    }

    /// The process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL: no chance to flush, ack or hand anything back.
    pub async fn kill9(&mut self) {
        self.kill().await.expect("kill -9");
    }

    /// SIGKILL, with an error instead of a panic.
    pub async fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill().await
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.child.wait().await.expect("exit status")
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        self.send_term().expect("kill -TERM");
    }

    fn send_term(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process has exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("running kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid}: {status}");
        Ok(())
    }

    /// SIGTERM, then the exit status; `None` when the process still ran after `within` (it is
    /// then killed).
    pub async fn terminate_within(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.send_term()?;
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(exit) => Ok(Some(exit.context("waiting for the exit")?)),
            Err(_) => {
                let _ = self.child.kill().await;
                Ok(None)
            }
        }
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("checking the child")
    }

    /// Waits (up to `deadline`) for the process to exit and for everything it wrote to be read;
    /// returns its exit status.
    pub async fn exited(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the process did not exit within {deadline:?}"))
            .expect("exit status");
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }
}
