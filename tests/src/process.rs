//! A service binary running as a child process, so tests can kill it without warning (SIGKILL)
//! or stop it the way an orchestrator does (SIGTERM).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::{Child, Command};

pub struct Process {
    pub addr: SocketAddr,
    child: Child,
}

/// The workspace's binaries sit next to the test executable's `deps/` folder.
fn binary(name: &str) -> PathBuf {
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

impl Process {
    pub fn spawn(name: &str, common: &[(&str, String)], env: &[(&str, String)]) -> Self {
        let addr = free_port();
        let mut command = Command::new(binary(name));
        command
            .envs(common.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("HTTP_ADDR", addr.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = command.spawn().expect("service binary starts");
        Self { addr, child }
    }

    /// SIGKILL: no chance to flush, ack or hand anything back.
    pub async fn kill9(&mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().await.expect("exit status")
    }
}
