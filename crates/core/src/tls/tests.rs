use super::*;

#[test]
fn tls_settings_leave_the_url() {
    let split =
        split_url("postgres://u@db:5432/webhooks?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
            .expect("a URL");
    assert_eq!(
        split.url,
        "postgres://u@db:5432/webhooks?application_name=x"
    );
    assert_eq!(split.mode, Some(SslMode::VerifyFull));
    assert_eq!(split.root_cert, Some(PathBuf::from("/etc/ca.pem")));

    let plain = split_url("postgres://u@db/webhooks").expect("a URL");
    assert_eq!(plain.url, "postgres://u@db/webhooks");
    assert_eq!(plain.mode, None);

    let only = split_url("postgresql://db/w?sslmode=require").expect("a URL");
    assert_eq!(only.url, "postgresql://db/w");
    assert_eq!(only.mode, Some(SslMode::Require));

    let pairs = split_url("host=db user=u sslmode=verify-ca dbname=w").expect("pairs");
    assert_eq!(pairs.url, "host=db user=u dbname=w");
    assert_eq!(pairs.mode, Some(SslMode::VerifyCa));

    let error = split_url("postgres://db/w?sslmode=strict").expect_err("unknown mode");
    assert!(error.to_string().contains("\"strict\""), "{error}");
}

#[test]
fn verify_modes_ask_tokio_postgres_for_tls_or_nothing() {
    use tokio_postgres::config::SslMode as Pg;
    assert_eq!(SslMode::VerifyFull.negotiation(), Pg::Require);
    assert_eq!(SslMode::VerifyCa.negotiation(), Pg::Require);
    assert_eq!(SslMode::default().negotiation(), Pg::Prefer);
    assert_eq!(SslMode::Disable.negotiation(), Pg::Disable);
}

#[test]
fn a_missing_ca_file_is_named() {
    let error = client_config(SslMode::VerifyFull, Some(Path::new("/nonexistent/ca.pem")))
        .expect_err("no such file");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    assert!(
        client_config(SslMode::Disable, None)
            .expect("no TLS")
            .is_none()
    );
}
