//! A private PostgreSQL cluster for tests that restart the database server: its own data
//! directory, port and socket directory, so restarting it disturbs no other test. It may be
//! created stopped (to start services before their database) and may speak TLS only.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    /// Over TCP only TLS connections are accepted (the test's own checks use the socket).
    tls_only: bool,
}

/// The certificate (with its chain) and key, both PEM, of a cluster that speaks TLS.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// How `pg_ctl restart` stops the server first.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// Disconnect clients, write a checkpoint, stop.
    Fast,
    /// Stop at once without a checkpoint, as a crash would: the next start recovers from the log.
    Immediate,
}

/// The newest PostgreSQL installed under /usr/lib/postgresql.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed under /usr/lib/postgresql")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL with pg_ctl").1
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("address").port()
}

/// PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root.
fn as_postgres(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it.
    pub async fn start() -> Self {
        let pg = Self::create(None);
        pg.start_server().await;
        pg
    }

    /// Creates a cluster (trust authentication, user `postgres`) without starting it. With `tls`,
    /// it serves that certificate and refuses TCP connections that are not TLS.
    pub fn create(tls: Option<&ServerTls>) -> Self {
        let bin = bin_dir();
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("whtest-pg-{id}"));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let _ = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status();
        let pg = Self {
            port: free_port(),
            bin,
            dir,
            tls_only: tls.is_some(),
        };
        let status = as_postgres(&pg.bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(pg.data())
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        assert!(status.success(), "initdb failed");
        let mut settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 50\n",
            pg.port,
            pg.dir.display()
        );
        if let Some(tls) = tls {
            pg.write_tls(tls);
            settings
                .push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        let conf = pg.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("postgresql.conf");
        pg
    }

    /// The certificate and key in the data directory, and TLS alone allowed over TCP.
    fn write_tls(&self, tls: &ServerTls) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        std::fs::write(data.join("server.crt"), &tls.cert_pem).expect("server.crt");
        let key = data.join("server.key");
        std::fs::write(&key, &tls.key_pem).expect("server.key");
        // The server refuses a key that others may read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("key mode");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&data)
            .status();
    }

    /// Starts the server; returns once it accepts queries.
    pub async fn start_server(&self) {
        self.pg_ctl(&["start", "-w", "-t", "60"]);
        self.wait_accepting().await;
    }

    /// Stops the server (fast: clients are disconnected); the cluster stays for a later start.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-t", "60", "-m", "fast"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl_command(&self) -> Command {
        let mut command = as_postgres(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("log"));
        command
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = self
            .pg_ctl_command()
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl {args:?} failed");
    }

    /// The server's URL without a database name.
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Stops the server the way `mode` says and starts it again; returns once it accepts queries.
    pub async fn restart(&self, mode: Stop) {
        let mode = match mode {
            Stop::Fast => "fast",
            Stop::Immediate => "immediate",
        };
        // Asynchronously: the test publishes meanwhile.
        let status = tokio::process::Command::from(self.pg_ctl_command())
            .args(["restart", "-w", "-t", "60", "-m", mode])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl restart -m {mode} failed");
        self.wait_accepting().await;
    }

    /// A client of the `postgres` database over the cluster's socket (which needs no TLS), with
    /// its connection driven in the background.
    pub async fn socket_client(&self) -> Option<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(connection);
        Some(client)
    }

    async fn wait_accepting(&self) {
        let url = format!("{}/postgres", self.server_url());
        crate::wait::until(
            "the private PostgreSQL to accept queries",
            Duration::from_secs(60),
            || async {
                if self.tls_only {
                    let client = self.socket_client().await?;
                    return client.simple_query("SELECT 1").await.ok().map(|_| ());
                }
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client.simple_query("SELECT 1").await.ok().map(|_| ())
            },
        )
        .await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
