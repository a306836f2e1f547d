//! The answer to an attempt, as far as it is read: its status, the receiver's `Retry-After` on
//! 429 and 503, and the first bytes of its body (the rest is never read).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::retry::RetryAfter;

/// What an attempt's answer said.
pub(super) struct Answer {
    pub status: StatusCode,
    /// The receiver's `Retry-After` on 429/503.
    pub retry_after: Option<RetryAfter>,
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

/// `Retry-After`, in either of its forms (see [`RetryAfter::parse`]).
fn retry_after(headers: &HeaderMap) -> Option<RetryAfter> {
    RetryAfter::parse(headers.get(RETRY_AFTER)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(
            retry_after(&headers(" 120 ")),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2026 07:28:00 GMT")),
            Some(RetryAfter::At(
                "2026-10-21T07:28:00Z".parse().expect("a time")
            ))
        );
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
