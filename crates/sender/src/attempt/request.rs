//! The request of an attempt: the stored body and the contract's headers (§3), signed for this
//! attempt's timestamp.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use webhooks_core::headers::{self, Stamp};

use crate::claim::Job;

/// The `POST` of `job`'s body to `url` with `client`, stamped with `timestamp` (Unix seconds).
pub(super) fn prepare(
    client: &reqwest::Client,
    job: &Job,
    url: &reqwest::Url,
    timestamp: i64,
) -> reqwest::RequestBuilder {
    let id = job.delivery_id.to_string();
    let stamp = Stamp {
        delivery_id: &id,
        event_name: job.event_name.as_str(),
        timestamp,
        secret: job.secret.as_ref(),
        previous: job.previous_secret.as_ref(),
        body: &job.body,
    };
    let list = headers::attempt(&stamp);
    let mut map = HeaderMap::with_capacity(list.len());
    for (name, value) in list {
        // A secret that is no header value is not sent (the signature still is).
        let Ok(mut value) = HeaderValue::from_str(&value) else {
            continue;
        };
        if name == headers::SECRET {
            value.set_sensitive(true);
        }
        map.insert(HeaderName::from_static(name), value);
    }
    client
        .post(url.clone())
        .headers(map)
        .body(Bytes::clone(&job.body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::Target;
    use reqwest::header::CONTENT_TYPE;
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
