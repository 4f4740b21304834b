//! A minimal HTTP "browser" for the tests that play the user: a cookie jar per origin, manual
//! redirects, a record of visited URLs and of every page seen, and the form steps of the test bed's IdPs (Dex's
//! password form, Keycloak's login form). One browser for the web UI tests (`e2e_browser`) and
//! the CLI sign-in tests (`e2e_cli`, [`crate::machine::sso_login`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::testbed::Testbed;

/// The browser: trusts the test bed CA, follows no redirect by itself.
pub struct Browser {
    http: reqwest::Client,
    /// The cookies it holds, per origin (`https://host:port`), by name.
    pub jar: HashMap<String, BTreeMap<String, String>>,
    /// Every URL requested, in order.
    pub visited: Vec<String>,
    /// Every page seen, in order (what the leak test searches).
    pub history: Vec<Page>,
}

/// One answer seen by [`Browser`].
#[derive(Clone)]
pub struct Page {
    /// The method of the request.
    pub method: String,
    /// The status code.
    pub status: u16,
    /// The URL requested.
    pub url: String,
    /// `Location`, made absolute against [`Page::url`].
    pub location: Option<String>,
    /// Every `Set-Cookie` value, whole (attributes included).
    pub set_cookies: Vec<String>,
    /// The body as text (empty when unreadable).
    pub body: String,
    /// The response's status line, every header and the body, as text
    /// ([`crate::leak::response_text`]).
    pub raw: String,
}

impl Browser {
    /// A browser trusting the test bed CA (30 s per request).
    pub fn new(tb: &Testbed) -> Self {
        let pem = std::fs::read(tb.var("TESTBED_CA_FILE")).unwrap();
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30));
        for c in reqwest::Certificate::from_pem_bundle(&pem).unwrap() {
            b = b.add_root_certificate(c);
        }
        Self {
            http: b.build().unwrap(),
            jar: HashMap::new(),
            visited: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The origin (`scheme://host[:port]`) of `url`, the jar's key.
    pub fn origin(url: &str) -> String {
        url::Url::parse(url).unwrap().origin().ascii_serialization()
    }

    /// The cookie `name` held for `origin`.
    pub fn cookie(&self, origin: &str, name: &str) -> Option<&String> {
        self.jar.get(origin).and_then(|j| j.get(name))
    }

    /// The `Cookie` header this browser sends to `origin` (empty when it holds none).
    pub fn cookie_header(&self, origin: &str) -> String {
        self.jar
            .get(origin)
            .map(|j| {
                j.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// One request with the jar's cookies for the URL's origin, a form body and an `Origin`
    /// header when given. Cookies it sets are kept (one with `Max-Age=0` is removed); a
    /// `Set-Cookie` without `=` is ignored.
    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        origin_header: Option<&str>,
    ) -> Page {
        self.visited.push(url.to_owned());
        let origin = Self::origin(url);
        let method_name = method.to_string();
        let mut req = self.http.request(method, url);
        let cookies = self.cookie_header(&origin);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        if let Some(o) = origin_header {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|l| {
            url::Url::parse(url)
                .unwrap()
                .join(l.to_str().unwrap())
                .unwrap()
                .to_string()
        });
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let jar = self.jar.entry(origin.clone()).or_default();
            if c.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let page = Page {
            method: method_name,
            status,
            url: url.to_owned(),
            location,
            set_cookies,
            raw: crate::leak::response_text(status, &headers, &body),
            body,
        };
        self.history.push(page.clone());
        page
    }

    /// `GET url`.
    pub async fn get(&mut self, url: &str) -> Page {
        self.request(reqwest::Method::GET, url, None, None).await
    }

    /// `GET url`, or `POST url` with `form`.
    pub async fn fetch(&mut self, url: &str, form: Option<&[(&str, &str)]>) -> Page {
        match form {
            Some(f) => {
                self.request(reqwest::Method::POST, url, Some(f), None)
                    .await
            }
            None => self.get(url).await,
        }
    }

    /// Follows redirects with GET until a page answers (`Ok`), or until the next URL matches
    /// `stop` (returned as `Err(url)`, not requested). At most 10 redirects.
    pub async fn follow(&mut self, url: &str, stop: impl Fn(&str) -> bool) -> Result<Page, String> {
        let mut page = self.get(url).await;
        for _ in 0..10 {
            match page.location.clone() {
                Some(next) if stop(&next) => return Err(next),
                Some(next) => page = self.get(&next).await,
                None => return Ok(page),
            }
        }
        panic!("too many redirects from {url}")
    }

    /// Follows redirects from `url` at an IdP until a page answers or the next URL starts with
    /// `stop` (returned as `Err(url)` without requesting it). A redirect to Dex's bare `/auth`
    /// (connector chooser) gets `connector_id=local` added, as a user picking the password
    /// connector would. At most 15 redirects.
    pub async fn follow_to(&mut self, url: &str, stop: &str) -> Result<Page, String> {
        let mut page = self.get(&with_local_connector(url)).await;
        for _ in 0..15 {
            match page.location.clone() {
                Some(next) if next.starts_with(stop) => return Err(next),
                Some(next) => page = self.get(&with_local_connector(&next)).await,
                None => return Ok(page),
            }
        }
        panic!("too many redirects from {url}")
    }

    /// Submits Dex's password form on `page` as `user` and follows the redirects like
    /// [`Browser::follow_to`]; returns the first URL that starts with `stop` (the client's
    /// redirect URI) as `Err`, or the final page.
    pub async fn submit_login(
        &mut self,
        tb: &Testbed,
        page: &Page,
        user: &str,
        stop: &str,
    ) -> Result<Page, String> {
        let (email, password) = tb.credentials(user);
        self.submit_form(
            page,
            r#"method="post""#,
            &[("login", &email), ("password", &password)],
            stop,
        )
        .await
    }

    /// Submits the form whose opening tag contains `marker` (for example `id="kc-form-login"`)
    /// with `fields`, and follows the redirects like [`Browser::submit_login`].
    pub async fn submit_form(
        &mut self,
        page: &Page,
        marker: &str,
        fields: &[(&str, &str)],
        stop: &str,
    ) -> Result<Page, String> {
        let action = form_action(&page.body, &page.url, marker);
        let first = self.fetch(&action, Some(fields)).await;
        match first.location {
            Some(next) if next.starts_with(stop) => Err(next),
            Some(next) => self.follow_to(&next, stop).await,
            None => Ok(first),
        }
    }
}

/// The absolute action URL of the form on a page (`body` fetched from `page_url`) whose opening
/// tag contains `marker` (for example `id="kc-form-login"`, or `method="post"` for the first
/// POST form).
pub fn form_action(body: &str, page_url: &str, marker: &str) -> String {
    let tag = regex::Regex::new(r"<form[^>]*>")
        .unwrap()
        .find_iter(body)
        .map(|m| m.as_str())
        .find(|t| t.contains(marker))
        .unwrap_or_else(|| panic!("no form {marker} at {page_url}: {body}"));
    let action = regex::Regex::new(r#"action="([^"]+)""#)
        .unwrap()
        .captures(tag)
        .unwrap_or_else(|| panic!("the form at {page_url} has no action: {tag}"))[1]
        .replace("&amp;", "&");
    url::Url::parse(page_url)
        .unwrap()
        .join(&action)
        .unwrap()
        .to_string()
}

/// Adds `connector_id=local` to a request for Dex's bare `/auth` endpoint that names no
/// connector (Dex would show its connector chooser).
pub fn with_local_connector(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    if u.path().ends_with("/dex/auth") && !u.query_pairs().any(|(k, _)| k == "connector_id") {
        format!("{url}&connector_id=local")
    } else {
        url.to_owned()
    }
}
