//! Claims and users as CEL values, the way the kube-apiserver hands them to cel-go.
//!
//! The kube-apiserver decodes each claim with Go's `encoding/json` into `any` and converts it
//! with cel-go's default type adapter: every JSON number becomes a `double` (Go decodes
//! numbers into `float64`), objects become maps with string keys, arrays lists, `null` null.
//! The same here, from serde_json's values. [`size`] gives the largest list, map or string in
//! a value, for the cost bound ([`super::Expression::cost_bound`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::Value;
use cel::objects::Key;
use serde_json::Value as Json;

/// A JSON value as cel-go sees it after Go's JSON decoding.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        // Go decodes every JSON number into a float64; so does this, rounding as Go rounds.
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(from_json).collect())),
        Json::Object(map) => object(map.iter().map(|(k, v)| (k.clone(), from_json(v)))),
    }
}

/// A map of string keys.
pub fn object(entries: impl Iterator<Item = (String, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .map(|(k, v)| (Key::String(Arc::new(k)), v))
        .collect();
    Value::Map(cel::objects::Map { map: Arc::new(map) })
}

/// The `user` variable of user validation rules: `kubernetes.UserInfo`'s four fields.
pub fn user(
    username: &str,
    uid: &str,
    groups: &[String],
    extra: &BTreeMap<String, Vec<String>>,
) -> Value {
    let strings = |items: &[String]| {
        Value::List(Arc::new(
            items
                .iter()
                .map(|s| Value::String(Arc::new(s.clone())))
                .collect(),
        ))
    };
    object(
        [
            (
                "username".to_owned(),
                Value::String(Arc::new(username.to_owned())),
            ),
            ("uid".to_owned(), Value::String(Arc::new(uid.to_owned()))),
            ("groups".to_owned(), strings(groups)),
            (
                "extra".to_owned(),
                object(extra.iter().map(|(k, v)| (k.clone(), strings(v)))),
            ),
        ]
        .into_iter(),
    )
}

/// The largest list, map or string (in characters) anywhere in `json`, at least 1.
pub fn size(json: &Json) -> u64 {
    fn walk(json: &Json) -> usize {
        match json {
            Json::Null | Json::Bool(_) | Json::Number(_) => 1,
            Json::String(s) => s.chars().count(),
            Json::Array(items) => items.iter().map(walk).fold(items.len(), usize::max),
            Json::Object(map) => map
                .iter()
                .map(|(k, v)| walk(v).max(k.chars().count()))
                .fold(map.len(), usize::max),
        }
    }
    u64::try_from(walk(json)).unwrap_or(u64::MAX).max(1)
}

/// Whether the kube-apiserver reads `name` as another name: cel's escaping
/// (k8s.io/apiserver `pkg/cel/escaping.go`, `Unescape`) turns `__dot__`, `__dash__`,
/// `__slash__`, `__underscores__` and a whole-name `__<reserved word>__` back into `.`, `-`,
/// `/`, `__` and the word, when every `__x__` in the name is one of these. The kube-apiserver
/// applies it to every claim looked up by name; gatehouse does not, so it refuses such names
/// (in expressions at load, in tokens' keys when evaluating), and the two never read different
/// claims.
pub fn is_escaped_name(name: &str) -> bool {
    const RESERVED: [&str; 22] = [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "",
    ];
    let mut found = false;
    let mut rest = name;
    while let Some(start) = rest.find("__") {
        let after = &rest[start + 2..];
        // `__` + one or more non-underscores + `__` (Go's regexp, leftmost, non-overlapping).
        let end = after.find('_').unwrap_or(after.len());
        if end == 0 || !after[end..].starts_with("__") {
            rest = &rest[start + 1..];
            continue;
        }
        let contents = &after[..end];
        let whole = start == 0 && name.len() == contents.len() + 4 && rest.len() == name.len();
        match contents {
            "underscores" | "dot" | "dash" | "slash" => found = true,
            c if RESERVED.contains(&c) && !c.is_empty() => {
                if !whole {
                    return false;
                }
                found = true;
            }
            _ => return false,
        }
        rest = &after[end + 2..];
    }
    found
}

/// The claims as one CEL map, without copying them into a JSON object first.
pub fn from_claims(claims: &serde_json::Map<String, Json>) -> Value {
    object(claims.iter().map(|(k, v)| (k.clone(), from_json(v))))
}

/// [`size`] of the claims.
pub fn claims_size(claims: &serde_json::Map<String, Json>) -> u64 {
    claims
        .iter()
        .map(|(k, v)| size(v).max(u64::try_from(k.chars().count()).unwrap_or(u64::MAX)))
        .fold(u64::try_from(claims.len()).unwrap_or(u64::MAX), u64::max)
        .max(1)
}

/// Whether any object key in `json`, at any depth, is an escaped name ([`is_escaped_name`]).
pub fn has_escaped_key(json: &Json) -> bool {
    match json {
        Json::Array(items) => items.iter().any(has_escaped_key),
        Json::Object(map) => map
            .iter()
            .any(|(k, v)| is_escaped_name(k) || has_escaped_key(v)),
        _ => false,
    }
}
