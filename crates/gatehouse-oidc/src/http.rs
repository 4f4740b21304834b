//! The HTTP client for an issuer, and the two requests everything else is made of: a JSON GET
//! and a form POST, each with one typed error ([`HttpError`]).
//!
//! # Security
//! - TLS is rustls with the system roots plus, when given, the issuer's own PEM CA bundle
//!   ([`client`]); a bundle with no certificate in it is refused, not ignored.
//! - Redirects are never followed: a discovery document, a key set or a token endpoint must
//!   answer itself, so a redirect cannot send a client secret or a code elsewhere.
//! - An error answer is reduced to its OAuth `error` / `error_description` or a `message`
//!   ([`ErrorBody`]); a body that cannot be read is described by the kind and position of the
//!   JSON error only ([`HttpError::Decode`]), never by its content, which could hold a token.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_core::wire::oauth::OAuthError;
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};

/// Timeouts and the `User-Agent` of a [`client`].
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The whole request.
    pub timeout: Duration,
    /// Connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// The `User-Agent`, when one is sent.
    pub user_agent: Option<&'static str>,
}

/// Why a CA bundle cannot be used, or the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file cannot be read.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// The PEM cannot be parsed.
    #[error("{0}")]
    Pem(#[source] reqwest::Error),
    /// The bundle holds no certificate.
    #[error("no PEM certificate in it")]
    NoCertificate,
    /// The TLS client cannot be built.
    #[error("{0}")]
    Build(#[source] reqwest::Error),
}

/// An HTTP client trusting the system roots and, when given, the PEM bundle `ca_pem`.
/// Redirects are not followed.
pub fn client(ca_pem: Option<&[u8]>, settings: &Settings) -> Result<reqwest::Client, CaError> {
    build(ca_pem, settings, true)
}

/// An HTTP client trusting only the PEM bundle `ca_pem` when given (the system roots
/// otherwise), as the kube-apiserver's JWT authenticator trusts an
/// `issuer.certificateAuthority`. Redirects are not followed.
pub fn client_trusting_only(
    ca_pem: Option<&[u8]>,
    settings: &Settings,
) -> Result<reqwest::Client, CaError> {
    build(ca_pem, settings, false)
}

fn build(
    ca_pem: Option<&[u8]>,
    settings: &Settings,
    merge_with_system_roots: bool,
) -> Result<reqwest::Client, CaError> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(agent) = settings.user_agent {
        builder = builder.user_agent(agent);
    }
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(CaError::Pem)?;
        if certs.is_empty() {
            return Err(CaError::NoCertificate);
        }
        builder = if merge_with_system_roots {
            builder.tls_certs_merge(certs)
        } else {
            builder.tls_certs_only(certs)
        };
    }
    builder.build().map_err(CaError::Build)
}

/// [`client`] with the bundle read from `ca_file`.
pub fn client_with_ca_file(
    ca_file: Option<&Path>,
    settings: &Settings,
) -> Result<reqwest::Client, CaError> {
    let pem = ca_file
        .map(std::fs::read)
        .transpose()
        .map_err(CaError::Read)?;
    client(pem.as_deref(), settings)
}

/// What an error answer says, reduced to the parts that hold no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// The OAuth error (RFC 6749 §5.2), when the body has a non-empty `error`.
    pub oauth: Option<OAuthError>,
    /// A `message` string (the gatehouse server's and Kubernetes' error bodies).
    pub message: Option<String>,
}

impl ErrorBody {
    /// Reads an error answer's body; anything that is not JSON gives an empty [`ErrorBody`].
    pub fn parse(bytes: &[u8]) -> Self {
        let oauth = serde_json::from_slice::<OAuthError>(bytes)
            .ok()
            .filter(|e| e.code().is_some());
        let message = serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
        Self { oauth, message }
    }

    /// The OAuth error code, when there is one.
    pub fn oauth_code(&self) -> Option<&str> {
        self.oauth.as_ref().and_then(OAuthError::code)
    }

    /// For people: the OAuth error with its description, else the `message`, else `None`.
    pub fn text(&self) -> Option<String> {
        self.oauth
            .as_ref()
            .map(OAuthError::message)
            .or_else(|| self.message.clone())
    }
}

/// Why a request gave no usable answer. No variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer: connection, TLS, timeout, or the body broke off.
    #[error("cannot fetch {url}: {source}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with a status other than 2xx.
    #[error("cannot fetch {url}: it answered {status}{}", body.text().map(|t| format!(": {t}")).unwrap_or_default())]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// What the answer says.
        body: ErrorBody,
    },
    /// A 2xx answer that is not the JSON expected.
    #[error(
        "cannot fetch {url}: the answer cannot be read ({})",
        decode_reason(source)
    )]
    Decode {
        /// The URL.
        url: String,
        /// The cause (its `Display` may quote the body: use [`decode_reason`] to show it).
        source: serde_json::Error,
    },
}

impl HttpError {
    /// The OAuth error of an error answer, when it has one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            HttpError::Status { body, .. } => body.oauth.as_ref(),
            _ => None,
        }
    }

    /// The URL asked.
    pub fn url(&self) -> &str {
        match self {
            HttpError::Transport { url, .. }
            | HttpError::Status { url, .. }
            | HttpError::Decode { url, .. } => url,
        }
    }
}

/// A JSON error described without its content: `Data error at line 1 column 9`.
pub fn decode_reason(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// The answer of [`send`]: a 2xx status's headers and body.
struct Answer {
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

async fn send(url: &str, req: reqwest::RequestBuilder) -> Result<Answer, HttpError> {
    let transport = |source| HttpError::Transport {
        url: url.to_owned(),
        source,
    };
    let resp = req
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(HttpError::Status {
            url: url.to_owned(),
            status,
            body: ErrorBody::parse(&body),
        });
    }
    Ok(Answer { headers, body })
}

fn decode<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|source| HttpError::Decode {
        url: url.to_owned(),
        source,
    })
}

/// GETs a JSON document, with `bearer` as the `Authorization` when given.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<T, HttpError> {
    let mut req = http.get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let answer = send(url, req).await?;
    decode(url, &answer.body)
}

/// GETs a JSON document and the answer's `Cache-Control` (all its values, comma-joined).
pub async fn get_json_cached<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<(T, Option<String>), HttpError> {
    let answer = send(url, http.get(url)).await?;
    let cache_control = answer
        .headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let body = decode(url, &answer.body)?;
    Ok((body, (!cache_control.is_empty()).then_some(cache_control)))
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A public client: `client_id` in the form.
    Public(&'a str),
    /// A confidential client: HTTP Basic with the client ID and secret
    /// (`client_secret_basic`, RFC 6749 §2.3.1).
    Basic {
        /// The client ID.
        client_id: &'a str,
        /// The client secret.
        secret: &'a SecretString,
    },
}

impl ClientAuth<'_> {
    /// The client ID.
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Public(id) | ClientAuth::Basic { client_id: id, .. } => id,
        }
    }
}

/// POSTs `form` as the client `auth` and returns the 2xx answer's body.
pub(crate) async fn post_form_raw(
    http: &reqwest::Client,
    url: &str,
    auth: ClientAuth<'_>,
    form: &[(&str, &str)],
) -> Result<Bytes, HttpError> {
    let req = match auth {
        ClientAuth::Public(id) => {
            let mut full: Vec<(&str, &str)> = form.to_vec();
            full.push(("client_id", id));
            http.post(url).form(&full)
        }
        ClientAuth::Basic { client_id, secret } => http
            .post(url)
            .basic_auth(client_id, Some(secret.expose_secret()))
            .form(form),
    };
    Ok(send(url, req).await?.body)
}

/// POSTs `form` as the client `auth` and reads the JSON answer.
pub async fn post_form<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    auth: ClientAuth<'_>,
    form: &[(&str, &str)],
) -> Result<T, HttpError> {
    let body = post_form_raw(http, url, auth, form).await?;
    decode(url, &body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_keeps_the_oauth_error_or_the_message_and_nothing_else() {
        let b = ErrorBody::parse(br#"{"error":"invalid_grant","error_description":"reused"}"#);
        assert_eq!(b.oauth_code(), Some("invalid_grant"));
        assert_eq!(b.text().as_deref(), Some("invalid_grant (reused)"));
        let b = ErrorBody::parse(br#"{"message":"not allowed","token":"SECRET"}"#);
        assert_eq!(b.oauth_code(), None);
        assert_eq!(b.text().as_deref(), Some("not allowed"));
        let b = ErrorBody::parse(b"<html>proxy error</html>");
        assert_eq!(b, ErrorBody::default());
        let b = ErrorBody::parse(br#"{"error":""}"#);
        assert_eq!(b.oauth_code(), None);
    }

    #[test]
    fn a_body_that_cannot_be_read_is_described_without_its_content() {
        let source = serde_json::from_slice::<u64>(br#""SECRET-TOKEN""#).unwrap_err();
        let e = HttpError::Decode {
            url: "https://idp/token".to_owned(),
            source,
        };
        let text = e.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("Data error at line 1"), "{text}");
    }

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        let s = Settings {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            user_agent: None,
        };
        assert!(matches!(
            client(Some(b"not a certificate"), &s),
            Err(CaError::NoCertificate)
        ));
        assert!(client(None, &s).is_ok());
        assert!(matches!(
            client_with_ca_file(Some(Path::new("/nonexistent/ca.pem")), &s),
            Err(CaError::Read(_))
        ));
    }
}
