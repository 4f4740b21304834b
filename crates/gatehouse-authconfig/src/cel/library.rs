//! The functions the kube-apiserver's CEL environment has and cel-rust lacks, as far as claim
//! expressions use them: cel-go's `sets` extension (`sets.contains`, `sets.equivalent`,
//! `sets.intersects`), Kubernetes' regex library (`find`, `findAll`) and its lists library
//! (`isSorted`, `sum`, `min`, `max`). Each follows the Kubernetes implementation
//! (k8s.io/apiserver `pkg/cel/library`, cel-go `ext/sets.go`), tested in `cel/tests.rs`.
//!
//! Regular expressions are RE2 in both (Go's `regexp`, Rust's `regex`): the same syntax and
//! linear-time matching.

use std::sync::Arc;

use cel::extractors::This;
use cel::{Context, ExecutionError, ResolveResult, Value};

/// Adds the functions to a root context.
pub fn register(context: &mut Context<'static, 'static>) -> Result<(), cel::DeclarationError> {
    context.add_function("sets.contains", sets_contains)?;
    context.add_function("sets.equivalent", sets_equivalent)?;
    context.add_function("sets.intersects", sets_intersects)?;
    context.add_function("find", find)?;
    context.add_function("findAll", find_all)?;
    context.add_function("isSorted", is_sorted)?;
    context.add_function("sum", sum)?;
    context.add_function("min", min)?;
    context.add_function("max", max)?;
    Ok(())
}

fn has(list: &[Value], item: &Value) -> bool {
    list.iter().any(|v| v == item)
}

/// `sets.contains(a, b)`: every element of `b` is in `a`.
fn sets_contains(a: Arc<Vec<Value>>, b: Arc<Vec<Value>>) -> bool {
    b.iter().all(|item| has(&a, item))
}

/// `sets.equivalent(a, b)`: `a` and `b` hold the same elements (counts and order aside).
fn sets_equivalent(a: Arc<Vec<Value>>, b: Arc<Vec<Value>>) -> bool {
    b.iter().all(|item| has(&a, item)) && a.iter().all(|item| has(&b, item))
}

/// `sets.intersects(a, b)`: `a` and `b` have an element in common.
fn sets_intersects(a: Arc<Vec<Value>>, b: Arc<Vec<Value>>) -> bool {
    b.iter().any(|item| has(&a, item))
}

fn regex(pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| ExecutionError::function_error("find", e.to_string()))
}

/// `s.find(re)`: the first match of `re` in `s`, or the empty string.
fn find(This(s): This<Arc<String>>, pattern: Arc<String>) -> ResolveResult {
    let re = regex(&pattern)?;
    Ok(Value::from(
        re.find(&s)
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
    ))
}

/// `s.findAll(re)` and `s.findAll(re, n)`: the matches of `re` in `s`, all of them or at
/// most `n` (a negative `n` is all; zero is none).
fn find_all(This(s): This<Arc<String>>, args: cel::extractors::Arguments) -> ResolveResult {
    let (pattern, limit) = match args.0.as_slice() {
        [Value::String(p)] => (p.clone(), -1),
        [Value::String(p), Value::Int(n)] => (p.clone(), *n),
        _ => {
            return Err(ExecutionError::function_error(
                "findAll",
                "expects a pattern string and optionally a count",
            ));
        }
    };
    let re = regex(&pattern)?;
    let matches = re.find_iter(&s).map(|m| Value::from(m.as_str().to_owned()));
    let found: Vec<Value> = match usize::try_from(limit) {
        Ok(n) => matches.take(n).collect(),
        Err(_) => matches.collect(),
    };
    Ok(Value::List(Arc::new(found)))
}

/// Orders two list elements of one comparable type (int, uint, double, string, bool).
fn order(a: &Value, b: &Value, function: &str) -> Result<std::cmp::Ordering, ExecutionError> {
    a.partial_cmp(b).ok_or_else(|| {
        ExecutionError::function_error(function, "the list's elements are not comparable")
    })
}

/// `list.isSorted()`.
fn is_sorted(This(list): This<Arc<Vec<Value>>>) -> ResolveResult {
    for pair in list.windows(2) {
        if let [a, b] = pair
            && order(a, b, "isSorted")? == std::cmp::Ordering::Greater
        {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

/// `list.sum()`: of ints, uints or doubles; `0` for an empty list.
fn sum(This(list): This<Arc<Vec<Value>>>) -> ResolveResult {
    let Some(first) = list.first() else {
        return Ok(Value::Int(0));
    };
    let overflow = || ExecutionError::function_error("sum", "integer overflow");
    match first {
        Value::Int(_) => list
            .iter()
            .try_fold(0i64, |acc, v| match v {
                Value::Int(i) => acc.checked_add(*i).ok_or_else(overflow),
                _ => Err(ExecutionError::function_error("sum", "mixed element types")),
            })
            .map(Value::Int),
        Value::UInt(_) => list
            .iter()
            .try_fold(0u64, |acc, v| match v {
                Value::UInt(i) => acc.checked_add(*i).ok_or_else(overflow),
                _ => Err(ExecutionError::function_error("sum", "mixed element types")),
            })
            .map(Value::UInt),
        Value::Float(_) => list
            .iter()
            .try_fold(0f64, |acc, v| match v {
                Value::Float(f) => Ok(acc + f),
                _ => Err(ExecutionError::function_error("sum", "mixed element types")),
            })
            .map(Value::Float),
        _ => Err(ExecutionError::function_error(
            "sum",
            "the list's elements are not numbers",
        )),
    }
}

fn extreme(list: &[Value], function: &str, want: std::cmp::Ordering) -> ResolveResult {
    let mut items = list.iter();
    let Some(mut best) = items.next() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    for item in items {
        if order(item, best, function)? == want {
            best = item;
        }
    }
    Ok(best.clone())
}

/// `list.min()`.
fn min(This(list): This<Arc<Vec<Value>>>) -> ResolveResult {
    extreme(&list, "min", std::cmp::Ordering::Less)
}

/// `list.max()`.
fn max(This(list): This<Arc<Vec<Value>>>) -> ResolveResult {
    extreme(&list, "max", std::cmp::Ordering::Greater)
}
