//! Rendering gatehouse's pages: an askama template into a response (a template that cannot
//! render is a 500 Status, never a half page), and the error page that the web UI
//! ([`crate::ui`]) and the sign-in flow ([`crate::browser`]) both answer with.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::status::ApiError;

/// The page `t`, rendered, with `status`.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::Internal(format!("cannot render the page: {e}")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    signed_in: bool,
    page: &'a str,
    title: &'a str,
    message: &'a str,
    retry: Option<&'a str>,
}

/// An error page that says what happened and offers to start again.
pub fn error_page(status: StatusCode, title: &str, message: &str, retry: Option<&str>) -> Response {
    render(
        status,
        &ErrorPage {
            signed_in: false,
            page: "",
            title,
            message,
            retry,
        },
    )
}
