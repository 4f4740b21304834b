//! The reader every section is read through: a key path into the YAML document, its
//! environment alias (which wins), `...File` secrets, typed values, and the problems and
//! unknown keys collected on the way.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::{Problem, Source};

pub(super) struct Reader<'a> {
    pub(super) root: Value,
    pub(super) env: &'a dyn Source,
    pub(super) problems: Vec<Problem>,
    pub(super) seen: BTreeSet<String>,
}

impl Reader<'_> {
    pub(super) fn problem(&mut self, key: &str, message: &str) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The raw value at `path`, from the env alias first, then the file. The returned key is
    /// where the value came from, for messages.
    pub(super) fn raw(&mut self, path: &str, alias: Option<&str>) -> Option<(String, RawValue)> {
        self.seen.insert(path.to_owned());
        if let Some(name) = alias
            && let Some(v) = self.env.get(name)
        {
            return Some((name.to_owned(), RawValue::Env(v)));
        }
        let mut cur = &self.root;
        for part in path.split('.') {
            cur = cur.get(part)?;
        }
        if cur.is_null() {
            return None;
        }
        Some((path.to_owned(), RawValue::File(cur.clone())))
    }

    pub(super) fn parse_with<T>(
        &mut self,
        key: &str,
        s: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match f(s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(key, &e);
                None
            }
        }
    }

    pub(super) fn string(&mut self, path: &str, alias: Option<&str>) -> Option<String> {
        match self.raw(path, alias)? {
            (_, RawValue::Env(s)) => Some(s),
            (_, RawValue::File(Value::String(s))) => Some(s),
            (_, RawValue::File(Value::Number(n))) => Some(n.to_string()),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a string");
                None
            }
        }
    }

    pub(super) fn bool(&mut self, path: &str, alias: Option<&str>) -> Option<bool> {
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" | "" => Some(false),
                _ => {
                    self.problem(&key, "expected true or false");
                    None
                }
            },
            (_, RawValue::File(Value::Bool(b))) => Some(b),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected true or false");
                None
            }
        }
    }

    pub(super) fn int(&mut self, path: &str, alias: Option<&str>) -> Option<i64> {
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) => self.parse_with(&key, &s, |s| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| "expected an integer".to_owned())
            }),
            (_, RawValue::File(Value::Number(n))) if n.is_i64() => n.as_i64(),
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected an integer");
                None
            }
        }
    }

    pub(super) fn list(&mut self, path: &str, alias: Option<&str>) -> Option<Vec<String>> {
        match self.raw(path, alias)? {
            (_, RawValue::Env(s)) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            (key, RawValue::File(Value::Array(items))) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => out.push(s.to_owned()),
                        None => self.problem(&format!("{key}[{i}]"), "expected a string"),
                    }
                }
                Some(out)
            }
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a list of strings");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, path: &str, alias: Option<&str>) -> Option<Duration> {
        let parse = |s: &str| {
            humantime::parse_duration(s.trim())
                .map_err(|e| format!("expected a duration such as 30s, 10m or 24h ({e})"))
        };
        match self.raw(path, alias)? {
            (key, RawValue::Env(s)) | (key, RawValue::File(Value::String(s))) => {
                self.parse_with(&key, &s, parse)
            }
            (_, RawValue::File(Value::Number(n))) if n.is_u64() => {
                n.as_u64().map(Duration::from_secs)
            }
            (key, RawValue::File(_)) => {
                self.problem(&key, "expected a duration such as 30s, 10m or 24h");
                None
            }
        }
    }

    pub(super) fn url(&mut self, path: &str, alias: Option<&str>) -> Option<Url> {
        let s = self.string(path, alias)?;
        let key = alias
            .filter(|a| self.env.get(a).is_some())
            .unwrap_or(path)
            .to_owned();
        self.parse_with(&key, &s, |s| {
            Url::parse(s.trim()).map_err(|e| format!("expected an absolute URL ({e})"))
        })
    }

    pub(super) fn path(&mut self, path: &str, alias: Option<&str>) -> Option<PathBuf> {
        self.string(path, alias).map(PathBuf::from)
    }

    /// A secret given inline, through `<path>File`, or through the env alias.
    pub(super) fn secret(&mut self, path: &str, alias: Option<&str>) -> Option<String> {
        let file_key = format!("{path}File");
        let inline = self.string(path, alias);
        let file = self.path(&file_key, None);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(path, &format!("set either {path} or {file_key}, not both"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(f)) => match std::fs::read_to_string(&f) {
                Ok(v) => Some(v.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => {
                    self.problem(&file_key, &format!("cannot read {}: {e}", f.display()));
                    None
                }
            },
            (None, None) => None,
        }
    }

    pub(super) fn unknown_keys(&mut self) {
        let mut unknown = Vec::new();
        walk_unknown(&self.root, "", &self.seen, &mut unknown);
        for key in unknown {
            self.problem(
                &key,
                "unknown setting (check the spelling; see docs/configuration.md)",
            );
        }
    }
}

pub(super) enum RawValue {
    Env(String),
    File(Value),
}

fn walk_unknown(v: &Value, prefix: &str, seen: &BTreeSet<String>, out: &mut Vec<String>) {
    let Value::Object(map) = v else { return };
    for (k, child) in map {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if seen.contains(&full) {
            continue;
        }
        let dotted = format!("{full}.");
        if seen.iter().any(|s| s.starts_with(&dotted)) {
            walk_unknown(child, &full, seen, out);
        } else {
            out.push(full);
        }
    }
}
