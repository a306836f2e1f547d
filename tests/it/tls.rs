//! TLS to PostgreSQL and RabbitMQ: a certificate authority and a server certificate made here, a
//! private cluster that accepts only TLS over TCP and a private node with a TLS listener. Events
//! travel through both; `sslmode` means what it means to libpq; a certificate from an authority
//! the services were not told to trust is refused, and the log says so.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::PathBuf;
use std::time::Duration;
use webhooks_tests::postgres::{PrivatePostgres, ServerTls};
use webhooks_tests::process::Process;
use webhooks_tests::rabbit::{NodeTls, PrivateRabbit};
use webhooks_tests::receiver::Receiver;
use webhooks_tests::standalone::{self, Standalone};

/// A node takes seconds to boot.
const LONG: Duration = Duration::from_secs(90);

/// A certificate authority, a certificate it issued to `localhost` (and to no address), and an
/// authority that has nothing to do with it; the PEM files of both authorities.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    dir: PathBuf,
}

fn authority(name: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params, key)
}

impl Pki {
    fn new() -> Self {
        let (ca_params, ca_key) = authority("webhooks test CA");
        let ca_pem = ca_params
            .self_signed(&ca_key)
            .expect("CA certificate")
            .pem();
        let (other_params, other_key) = authority("some other CA");
        let other_pem = other_params
            .self_signed(&other_key)
            .expect("other CA certificate")
            .pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert_pem = params
            .signed_by(&key, &issuer)
            .expect("server certificate")
            .pem();

        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("whtest-pki-{}", &id[..10]));
        std::fs::create_dir_all(&dir).expect("PKI directory");
        std::fs::write(dir.join("ca.pem"), &ca_pem).expect("ca.pem");
        std::fs::write(dir.join("other-ca.pem"), other_pem).expect("other-ca.pem");
        Self {
            ca_pem,
            cert_pem,
            key_pem: key.serialize_pem(),
            dir,
        }
    }

    /// The authority that issued the servers' certificate.
    fn ca_file(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// An authority that issued nothing the servers show.
    fn other_ca_file(&self) -> String {
        self.dir.join("other-ca.pem").display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A dispatcher alone, for settings that are expected to fail or to connect.
fn dispatcher(env: &[(&str, String)]) -> Process {
    let mut all = vec![
        ("ADMIN_TOKEN", standalone::TOKEN.to_owned()),
        ("DATABASE_POOL_SIZE", "2".to_owned()),
        ("HANDOFF_KEY", webhooks_tests::world::HANDOFF_KEY.to_owned()),
    ];
    all.extend(env.iter().cloned());
    Process::spawn("webhooks-dispatcher", &all, &[])
}

async fn readyz(addr: std::net::SocketAddr) -> Option<u16> {
    let response = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
    Some(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_travel_over_tls_and_an_unknown_authority_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let pg = PrivatePostgres::create(Some(&ServerTls {
        cert_pem: pki.cert_pem.clone(),
        key_pem: pki.key_pem.clone(),
    }));
    pg.start_server().await;
    let mut rabbit = PrivateRabbit::configure(Some(&NodeTls {
        cert_pem: pki.cert_pem.clone(),
        key_pem: pki.key_pem.clone(),
        ca_pem: pki.ca_pem.clone(),
    }));
    rabbit.boot().await;
    let database = |host: &str, mode: &str| {
        format!(
            "postgres://postgres@{host}:{}/webhooks?sslmode={mode}",
            pg.port
        )
    };
    let amqps = rabbit.tls_url("localhost");

    // Both verified in full: the authority and the name.
    let receiver = Receiver::start().await;
    let services = Standalone::spawn(&[
        ("DATABASE_URL", database("localhost", "verify-full")),
        ("DATABASE_CA_FILE", pki.ca_file()),
        ("AMQP_URL", amqps.clone()),
        ("AMQP_CA_FILE", pki.ca_file()),
    ]);
    services.wait_both("/readyz", 200, LONG).await;
    services
        .webhook("DEMO", &receiver.url("/tls"), &["run.started"])
        .await;
    standalone::publish(&rabbit.url(), "domain.events", "DEMO", "run.started").await;
    let got = receiver.wait_for("/tls", 1, crate::SOON).await;
    assert_eq!(got[0].header("x-qase-event"), Some("run.started"));
    // Every session of the services is encrypted (the cluster refuses any other over TCP).
    let admin = pg.socket_client().await.expect("the cluster's socket");
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE s.ssl)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = 'webhooks' AND a.backend_type = 'client backend'",
            &[],
        )
        .await
        .expect("sessions");
    let (sessions, encrypted): (i64, i64) = (row.get(0), row.get(1));
    assert!(sessions > 0, "no session of the services");
    assert_eq!(encrypted, sessions, "sessions without TLS");

    // Refused: the database's or the broker's certificate comes from an authority not trusted;
    // the database's certificate is not issued to the address connected to.
    let wrong_database = dispatcher(&[
        ("DATABASE_URL", database("localhost", "verify-full")),
        ("DATABASE_CA_FILE", pki.other_ca_file()),
        ("AMQP_URL", amqps.clone()),
        ("AMQP_CA_FILE", pki.ca_file()),
    ]);
    let wrong_broker = dispatcher(&[
        ("DATABASE_URL", database("localhost", "verify-full")),
        ("DATABASE_CA_FILE", pki.ca_file()),
        ("AMQP_URL", amqps.clone()),
        ("AMQP_CA_FILE", pki.other_ca_file()),
    ]);
    let wrong_name = dispatcher(&[
        ("DATABASE_URL", database("127.0.0.1", "verify-full")),
        ("DATABASE_CA_FILE", pki.ca_file()),
        ("AMQP_URL", amqps.clone()),
        ("AMQP_CA_FILE", pki.ca_file()),
    ]);
    // Accepted: `require` encrypts without checking (no CA file: the authority is unknown);
    // `verify-ca` checks the authority but not the name.
    let require = dispatcher(&[
        ("DATABASE_URL", database("127.0.0.1", "require")),
        ("AMQP_URL", amqps.clone()),
        ("AMQP_CA_FILE", pki.ca_file()),
    ]);
    let verify_ca = dispatcher(&[
        ("DATABASE_URL", database("127.0.0.1", "verify-ca")),
        ("DATABASE_CA_FILE", pki.ca_file()),
        ("AMQP_URL", amqps),
        ("AMQP_CA_FILE", pki.ca_file()),
    ]);

    for (what, process, says) in [
        (
            "an unknown authority of the database",
            &wrong_database,
            "database set-up failed",
        ),
        (
            "an unknown authority of the broker",
            &wrong_broker,
            "broker session failed",
        ),
        (
            "a database certificate for another name",
            &wrong_name,
            "database set-up failed",
        ),
    ] {
        let line = process
            .wait_for_line(&format!("the refusal of {what}"), LONG, |line| {
                line.contains(says) && line.contains("certificate")
            })
            .await;
        println!("{what}: {line}");
        assert_eq!(readyz(process.addr).await, Some(503), "{what} accepted");
    }
    for (what, process) in [("require", &require), ("verify-ca", &verify_ca)] {
        webhooks_tests::wait::until(&format!("sslmode={what} to connect"), LONG, || async {
            (readyz(process.addr).await == Some(200)).then_some(())
        })
        .await;
    }
}
