//! The answer to an attempt, as far as it is read: its status, the receiver's `Retry-After` on
//! 429 and 503, and the first bytes of its body (the rest is never read).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::Duration;

/// What an attempt's answer said.
pub(super) struct Answer {
    pub status: StatusCode,
    /// The receiver's `Retry-After` on 429/503.
    pub retry_after: Option<Duration>,
    /// The first `snippet_bytes` of the body, lossily decoded.
    pub snippet: String,
}

/// Sends `request` and reads its answer, keeping at most `snippet_bytes` of the body.
pub(super) async fn receive(
    request: reqwest::RequestBuilder,
    snippet_bytes: usize,
) -> reqwest::Result<Answer> {
    let mut response = request.send().await?;
    let status = response.status();
    let retry_after = if matches!(status.as_u16(), 429 | 503) {
        retry_after(response.headers())
    } else {
        None
    };
    let mut kept = Vec::new();
    // Read at most the snippet; a receiver streaming forever costs nothing more.
    while kept.len() < snippet_bytes {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = snippet_bytes - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            // A body cut short does not change the status the receiver already gave.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(Answer {
        status,
        retry_after,
        snippet: String::from_utf8_lossy(&kept).into_owned(),
    })
}

/// `Retry-After` as delay-seconds (HTTP dates are rare from webhook receivers and are ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn retry_after_is_read_as_seconds_only() {
        assert_eq!(
            retry_after(&headers(" 120 ")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2026 07:28:00 GMT")), None);
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
