//! The outcome of `gatehouse doctor`: one verdict per step, and how it is printed (text or
//! JSON). The wording helpers for a step's detail and fix are here too.

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::cli::Output;
use crate::cli::error::CliError;

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Broken; `fix` says what to change.
    Fail,
    /// Not checked, and why is in `detail`.
    Skip,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was checked.
    pub name: Cow<'static, str>,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to change, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

pub(super) struct Report {
    pub(super) steps: Vec<Step>,
}

impl Report {
    pub(super) fn pass(&mut self, name: impl Into<Cow<'static, str>>, detail: impl Into<String>) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        });
    }
    pub(super) fn fail(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
    pub(super) fn skip(&mut self, name: impl Into<Cow<'static, str>>, detail: impl Into<String>) {
        self.steps.push(Step {
            name: name.into(),
            verdict: Verdict::Skip,
            detail: detail.into(),
            fix: None,
        });
    }
    pub(super) fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.verdict == Verdict::Fail)
    }
}

pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

pub(super) fn connect_fix(e: &str, what: &str) -> String {
    if e.contains("certificate") || e.contains("UnknownIssuer") || e.contains("invalid peer") {
        format!(
            "{what}'s TLS certificate is not trusted: pass its CA with --certificate-authority FILE (or install it in the system trust store)"
        )
    } else {
        format!("check that {what} runs and that the URL is right (port, scheme)")
    }
}

/// Text from an error page, shortened: tags removed, whitespace collapsed.
pub(super) fn page_text(body: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let text = words.join(" ");
    text.chars().take(200).collect()
}

pub(super) fn print(
    report: &Report,
    server: &str,
    output: Output,
    took: Duration,
) -> Result<(), CliError> {
    use std::fmt::Write as _;
    let ok = !report.failed();
    let v =
        json!({"server": server, "ok": ok, "steps": report.steps, "seconds": took.as_secs_f64()});
    crate::cli::output::print_data(output, &v, || {
        let mut out = format!("gatehouse doctor {server}\n");
        let width = report.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &report.steps {
            let mark = match s.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            let _ = writeln!(out, "  {mark}  {:width$}  {}", s.name, s.detail);
            if let Some(fix) = &s.fix {
                let _ = writeln!(out, "        {:width$}  fix: {fix}", "");
            }
        }
        let failed = report
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Fail)
            .count();
        if ok {
            let _ = write!(out, "all checks passed ({:.1} s)", took.as_secs_f64());
        } else {
            let _ = write!(
                out,
                "{failed} check(s) failed ({:.1} s)",
                took.as_secs_f64()
            );
        }
        out
    })
}
