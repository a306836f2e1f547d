//! A service binary running as a child process, so tests can kill it without warning (SIGKILL)
//! or stop it the way an orchestrator does (SIGTERM), and read what it logs.

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

/// The workspace's binaries sit next to the test executable's `deps/` folder.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run the tests with --workspace",
        path.display()
    );
    path
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("address")
}

/// Copies `pipe` line by line into `output`, and on to the test's own stderr (shown when a test
/// fails), until the process closes it.
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
        let addr = free_port();
        let mut command = Command::new(binary(name));
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
        let mut child = command.spawn().expect("service binary starts");
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(
                child.stdout.take().expect("stdout"),
                name.to_owned(),
                output.clone(),
            ),
            collect(
                child.stderr.take().expect("stderr"),
                name.to_owned(),
                output.clone(),
            ),
        ];
        Self {
            addr,
            child,
            output,
            readers,
        }
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
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.child.wait().await.expect("exit status")
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
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
