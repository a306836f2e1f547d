//! A request's query parameters, read so that a bad one gets a `400` naming it: each at most
//! once, and parsed by the handler that knows what it means. Parameters no route reads are
//! ignored, as the API always has.

use std::collections::HashMap;

use super::error::ApiError;

/// Deliveries a page holds unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// The query parameters of one request, by name.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Reads a raw query string (`None` when the request has none).
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::bad_request(format!(
                    "{name}: given more than once"
                )));
            }
        }
        Ok(Self(params))
    }

    /// The parameter `name` parsed by `parse`, `None` when not given; a value `parse` refuses is
    /// a `400` starting with the parameter's name and saying why.
    pub fn get<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.0
            .get(name)
            .map(|value| {
                parse(value).map_err(|why| ApiError::bad_request(format!("{name}: {why}")))
            })
            .transpose()
    }

    /// `limit`: how many deliveries a page holds, [`DEFAULT_LIMIT`] unless given, 1 to
    /// [`MAX_LIMIT`].
    pub fn limit(&self) -> Result<i64, ApiError> {
        let limit = self.get("limit", |text| {
            text.parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| format!("must be 1 to {MAX_LIMIT}"))
        })?;
        Ok(limit.unwrap_or(DEFAULT_LIMIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<i64, String> {
        text.parse().map_err(|_| "must be a number".to_owned())
    }

    #[test]
    fn reads_each_parameter_once_and_names_the_bad_one() {
        let params = Params::parse(Some("limit=5&other=x")).expect("valid");
        assert_eq!(params.get("limit", number).expect("number"), Some(5));
        assert_eq!(params.get("absent", number).expect("absent"), None);
        let bad = Params::parse(Some("limit=five")).expect("read");
        assert!(format!("{:?}", bad.get("limit", number).unwrap_err()).contains("limit: must be"));
        let twice = Params::parse(Some("limit=1&limit=2")).unwrap_err();
        assert!(format!("{twice:?}").contains("limit: given more than once"));
        assert!(Params::parse(None).is_ok());
    }
}
