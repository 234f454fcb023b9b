//! The one way providers are called: GET, a deadline, no redirects, a
//! bounded answer, and every transport failure as `ProviderUnavailable`.

use std::time::Duration;

use elements_identity::IdentityError;

/// The largest answer read from a provider (key sets and profiles are a
/// few KiB).
const MAX_ANSWER: usize = 1 << 20;

/// An HTTP client for provider calls. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
}

/// What a provider answered.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, if the provider gave one.
    pub max_age: Option<Duration>,
}

impl Answer {
    /// The body as JSON of type `T`, or `ProviderUnavailable` naming `what`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, IdentityError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| IdentityError::ProviderUnavailable(format!("{what}: not the expected JSON: {e}")))
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Fetcher {
    /// A client whose every call ends within `timeout`.
    pub fn new(timeout: Duration) -> Result<Fetcher, IdentityError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A provider's documented endpoints answer directly; following a
            // redirect could take the server somewhere no one configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("elements/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| IdentityError::internal(format!("HTTP client for login providers: {e}")))?;
        Ok(Fetcher { client })
    }

    /// GETs `url` with `query`; `what` names the call in errors (never the
    /// query, which may hold a token or a key).
    pub(crate) async fn get(
        &self,
        what: &str,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer, IdentityError> {
        self.read(what, self.client.get(url).query(query)).await
    }

    /// Sends an operator-defined request (an OAuth2 validation): `method`
    /// GET or POST, query `params`, `headers`, and for POST `body` as JSON
    /// or (`FORM_URL_ENCODED`) a form.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send(
        &self,
        what: &str,
        method: &str,
        url: &str,
        params: &[(String, String)],
        headers: &[(String, String)],
        body: &[(String, String)],
        body_type: Option<&str>,
    ) -> Result<Answer, IdentityError> {
        let mut request = match method {
            "POST" => self.client.post(url),
            _ => self.client.get(url),
        }
        .query(params);
        for (name, value) in headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| IdentityError::internal(format!("{what}: bad header name {name:?}")))?;
            // A client's value that can't be a header value can't be a token.
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                IdentityError::Unauthenticated("Could not authenticate OAuth2 profile.".into())
            })?;
            request = request.header(name, value);
        }
        if method == "POST" {
            request = if body_type == Some("FORM_URL_ENCODED") {
                request.form(body)
            } else {
                let map: serde_json::Map<String, serde_json::Value> = body
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                request.json(&map)
            };
        }
        self.read(what, request).await
    }

    async fn read(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Answer, IdentityError> {
        let unavailable = |e: String| IdentityError::ProviderUnavailable(format!("{what}: {e}"));
        let mut response = request
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        if response.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(unavailable("answer too large".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(unavailable("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body,
            max_age,
        })
    }
}

/// The `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|part| {
        let (name, secs) = part.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=21600, must-revalidate"),
            Some(Duration::from_secs(21600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
