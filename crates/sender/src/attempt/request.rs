//! The request of an attempt: the stored body and the contract's headers (§3), signed for this
//! attempt's timestamp.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use webhooks_core::signing::signatures;

use crate::claim::Job;

/// The `POST` of `job`'s body to `url` with `client`, stamped with `timestamp` (Unix seconds).
pub(super) fn prepare(
    client: &reqwest::Client,
    job: &Job,
    url: &reqwest::Url,
    timestamp: i64,
) -> reqwest::RequestBuilder {
    let id = job.delivery_id.to_string();
    let mut headers = HeaderMap::with_capacity(7);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        "x-qase-event",
        HeaderValue::from_static(job.event_name.as_str()),
    );
    headers.insert("x-qase-delivery", header(&id));
    headers.insert("webhook-id", header(&id));
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    if let Some(secret) = &job.secret {
        if let Ok(mut value) = HeaderValue::from_str(secret.expose()) {
            value.set_sensitive(true);
            headers.insert("x-qase-secret", value);
        }
        let signature = signatures(
            secret,
            job.previous_secret.as_ref(),
            &id,
            timestamp,
            &job.body,
        );
        headers.insert("webhook-signature", header(&signature));
    }
    client
        .post(url.clone())
        .headers(headers)
        .body(Bytes::clone(&job.body))
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("ids and signatures are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::Target;
    use webhooks_core::event::EventName;
    use webhooks_core::secret::Secret;
    use webhooks_core::signing::SigningKey;

    fn request(secret: Option<&str>) -> reqwest::Request {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = reqwest::Url::parse("http://example.com/hook").unwrap();
        let job = Job {
            delivery_id: uuid::Uuid::nil(),
            webhook_id: uuid::Uuid::nil(),
            project: String::new(),
            event_name: EventName::RunStarted.into(),
            url: Target::Url(url.clone()),
            secret: secret.map(Secret::new),
            previous_secret: None,
            body: Bytes::from_static(b"{\"a\":1}"),
            attempt_count: 0,
            first_attempt_at: None,
            webhook_changed_at: chrono::Utc::now(),
        };
        prepare(&reqwest::Client::new(), &job, &url, 1_650_540_069)
            .build()
            .unwrap()
    }

    #[test]
    fn carries_the_body_and_the_contract_headers() {
        let request = request(None);
        let headers = request.headers();
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers["x-qase-event"], "run.started");
        let id = uuid::Uuid::nil().to_string();
        assert_eq!(headers["x-qase-delivery"], id.as_str());
        assert_eq!(headers["webhook-id"], id.as_str());
        assert_eq!(headers["webhook-timestamp"], "1650540069");
        assert!(headers.get("webhook-signature").is_none());
        assert!(headers.get("x-qase-secret").is_none());
        let body = request.body().and_then(reqwest::Body::as_bytes);
        assert_eq!(body, Some(&b"{\"a\":1}"[..]));
    }

    #[test]
    fn a_secret_signs_the_request() {
        let request = request(Some("s3cr3t"));
        let headers = request.headers();
        assert_eq!(headers["x-qase-secret"], "s3cr3t");
        assert!(headers["x-qase-secret"].is_sensitive());
        let expected = SigningKey::from_secret(&Secret::new("s3cr3t")).sign(
            &uuid::Uuid::nil().to_string(),
            1_650_540_069,
            b"{\"a\":1}",
        );
        assert_eq!(headers["webhook-signature"], expected.as_str());
    }
}
