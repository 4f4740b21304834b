//! A scripted identity provider on 127.0.0.1 (port 0) for this crate's unit tests: one
//! HTTP/1.1 request per connection, answered by a handler, every request recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A request as the IdP saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The form body's pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        url_decode_pairs(&self.body)
    }
}

fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// A fixed answer for a path (`None`: any path).
#[derive(Debug, Clone)]
pub struct Route {
    pub path: Option<String>,
    pub resp: Resp,
}

impl Route {
    pub fn ok(path: &str, body: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_owned()),
            resp: Resp::json(200, body),
        }
    }

    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            path: None,
            resp: Resp::json(status, body),
        }
    }
}

/// The running IdP.
pub struct Idp {
    pub base: String,
    pub requests: Arc<Mutex<Vec<Req>>>,
}

impl Idp {
    /// Serves fixed routes (the first that matches; 404 otherwise).
    pub async fn start(routes: impl FnOnce(&str) -> Vec<Route>) -> Self {
        let mut routes_for = None;
        let idp = Self::serve_with(|base| {
            routes_for = Some(routes(base));
        })
        .await;
        let routes = routes_for.unwrap();
        idp.run(move |req| {
            routes
                .iter()
                .find(|r| r.path.as_deref().is_none_or(|p| p == req.path))
                .map(|r| r.resp.clone())
                .unwrap_or_else(|| Resp::json(404, "{}"))
        })
    }

    /// Serves answers made by `handler`.
    pub async fn handler(handler: impl Fn(&str, &Req) -> Resp + Send + Sync + 'static) -> Self {
        let idp = Self::serve_with(|_| {}).await;
        let base = idp.base.clone();
        idp.run(move |req| handler(&base, req))
    }

    async fn serve_with(f: impl FnOnce(&str)) -> Pending {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        f(&base);
        Pending { listener, base }
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

struct Pending {
    listener: tokio::net::TcpListener,
    base: String,
}

impl Pending {
    fn run(self, answer: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Idp {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let answer = Arc::new(answer);
        let listener = self.listener;
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let (seen, answer) = (Arc::clone(&seen), Arc::clone(&answer));
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut stream).await else {
                        return;
                    };
                    seen.lock().unwrap().push(req.clone());
                    let resp = answer(&req);
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    for (k, v) in &resp.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&resp.body);
                    let _ = stream.write_all(out.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Idp {
            base: self.base,
            requests,
        }
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.split('?').next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}
