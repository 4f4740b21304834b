//! The checks cel-go's type checker makes at load time, as far as the kube-apiserver's answer
//! depends on them: undeclared identifiers and functions are refused, the expression gets a
//! type (so a validation rule must be typed `bool`), `user`'s fields are known. Also taken
//! here, in the same walk: the cost shape ([`Checked::cost`]) and which fields of the variable
//! are selected ([`Checked::selects`], for the kube-apiserver's `claims.email_verified` rule).
//!
//! Types follow cel-go's inference in the cases that decide acceptance: a field of `claims` is
//! `dyn`; comparisons, `!`, `&&`, `||`, `in`, `has()`, `all`, `exists`, `exists_one` and the
//! boolean functions are `bool`; a conditional whose branches differ is `dyn`; an optional's
//! `orValue(x)` is `dyn` when the optional holds a `dyn`. Where cel-go would find a type error
//! between two known, different types (`'a' + 1`), gatehouse leaves it to evaluation, which
//! fails the same way for every token: the kube-apiserver refuses such a file at load,
//! gatehouse refuses every token it would apply to.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::Variable;

/// A checked expression's type (cel-go's, coarsened: element and value types are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `uint`.
    Uint,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
    /// `null_type`.
    Null,
    /// `list(_)`.
    List,
    /// `map(_, _)`.
    Map,
    /// `optional_type(_)`.
    Optional,
    /// `timestamp`.
    Timestamp,
    /// `duration`.
    Duration,
    /// `type`.
    Type,
    /// `kubernetes.UserInfo` (the `user` variable).
    User,
    /// `map(string, any)`: the `claims` variable.
    Claims,
    /// `google.protobuf.Any`: a claim (`claims.x`, `claims['x']`). cel-go treats it like `dyn`
    /// everywhere but as a comprehension's range: `claims.groups.map(g, g)` does not compile in
    /// the kube-apiserver (`dyn(claims.groups).map(g, g)` does).
    Any,
    /// `optional_type(any)`: `claims.?x`, whose `orValue` and `value` are `any`.
    OptionalAny,
    /// `dyn`: only known when evaluated.
    Dyn,
}

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The expression's type.
    pub output: Type,
    /// Nodes by nesting depth: `cost[k]` nodes run up to size^k times for an input whose
    /// largest collection or string has `size` elements (a comprehension adds one level to its
    /// loop, a linear-time function one to itself).
    pub cost: Vec<u64>,
    /// The fields of the variable selected (`claims.x`, `claims.?x`, `has(claims.x)`).
    pub selects: Vec<String>,
    /// The largest `lists.range(n)`: a collection the expression builds that may be larger
    /// than anything in the input, so the cost bound uses at least this size.
    pub range: u64,
}

/// Checks `expr` with `variable` declared.
pub fn check(expr: &IdedExpr, variable: Variable) -> Result<Checked, String> {
    let mut walk = Walk {
        variable,
        scope: Vec::new(),
        cost: Vec::new(),
        selects: Vec::new(),
        range: 0,
    };
    let output = walk.expr(expr, 0)?;
    Ok(Checked {
        output,
        cost: walk.cost,
        selects: walk.selects,
        range: walk.range,
    })
}

struct Walk {
    variable: Variable,
    scope: Vec<(String, Type)>,
    cost: Vec<u64>,
    selects: Vec<String>,
    range: u64,
}

impl Walk {
    fn count(&mut self, depth: usize) {
        if self.cost.len() <= depth {
            self.cost.resize(depth + 1, 0);
        }
        self.cost[depth] = self.cost[depth].saturating_add(1);
    }

    fn ident(&self, name: &str) -> Result<Type, String> {
        if let Some((_, t)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(*t);
        }
        if name == self.variable.name() {
            return Ok(match self.variable {
                Variable::Claims => Type::Claims,
                Variable::User => Type::User,
            });
        }
        Err(format!("undeclared reference to '{name}'"))
    }

    fn expr(&mut self, e: &IdedExpr, depth: usize) -> Result<Type, String> {
        self.count(depth);
        match &e.expr {
            Expr::Unspecified => Err("an empty expression".to_owned()),
            Expr::Ident(name) => self.ident(name),
            Expr::Literal(l) => Ok(match l {
                LiteralValue::Boolean(_) => Type::Bool,
                LiteralValue::Bytes(_) => Type::Bytes,
                LiteralValue::Double(_) => Type::Double,
                LiteralValue::Int(_) => Type::Int,
                LiteralValue::Null => Type::Null,
                LiteralValue::String(_) => Type::String,
                LiteralValue::UInt(_) => Type::Uint,
            }),
            Expr::List(list) => {
                for element in &list.elements {
                    self.expr(element, depth)?;
                }
                Ok(Type::List)
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.expr(&m.key, depth)?;
                            self.expr(&m.value, depth)?;
                        }
                        EntryExpr::StructField(_) => {
                            return Err("a struct field in a map literal".to_owned());
                        }
                    }
                }
                Ok(Type::Map)
            }
            Expr::Struct(s) => Err(format!("undeclared reference to '{}'", s.type_name)),
            Expr::Select(select) => {
                let operand = self.expr(&select.operand, depth)?;
                escaped(&select.field)?;
                self.note_select(&select.operand, &select.field);
                if select.test {
                    return match operand {
                        Type::Map | Type::Dyn | Type::User | Type::Claims | Type::Any => {
                            Ok(Type::Bool)
                        }
                        other => Err(format!(
                            "type '{}' does not support field selection",
                            name(other)
                        )),
                    };
                }
                self.field(operand, &select.field)
            }
            Expr::Comprehension(c) => {
                let range = self.expr(&c.iter_range, depth)?;
                if !matches!(range, Type::List | Type::Map | Type::Claims | Type::Dyn) {
                    return Err(format!(
                        "expression of type '{}' cannot be range of a comprehension (must be list, map, or dynamic)",
                        name(range)
                    ));
                }
                let init = self.expr(&c.accu_init, depth)?;
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scope.push((c.accu_var.clone(), init));
                self.scope.push((c.iter_var.clone(), Type::Dyn));
                if let Some(v2) = &c.iter_var2 {
                    self.scope.push((v2.clone(), Type::Dyn));
                }
                let inner = (|| {
                    self.expr(&c.loop_cond, depth + 1)?;
                    self.expr(&c.loop_step, depth + 1)?;
                    Ok::<(), String>(())
                })();
                // The result sees the accumulator, not the iteration variables.
                self.scope.truncate(self.scope.len() - pushed + 1);
                let result = inner.and_then(|()| self.expr(&c.result, depth));
                self.scope.pop();
                result
            }
            Expr::Call(call) => self.call(call, depth),
        }
    }

    /// `lists.range(n)` builds a list of n elements: n must be written in the expression (so
    /// the cost bound can use it), and the bound's size is at least n.
    fn note_range(&mut self, call: &cel::common::ast::CallExpr) -> Result<(), String> {
        match call.args.first().map(|a| &a.expr) {
            Some(Expr::Literal(LiteralValue::Int(n))) => {
                let n = u64::try_from(*n.inner()).unwrap_or(0);
                self.range = self.range.max(n);
                Ok(())
            }
            _ => Err(
                "gatehouse needs lists.range's argument to be a number written in the expression, to bound its cost".to_owned(),
            ),
        }
    }

    /// Records `claims.field` (or `user.field`) for [`Checked::selects`].
    fn note_select(&mut self, operand: &IdedExpr, field: &str) {
        if matches!(&operand.expr, Expr::Ident(n) if n == self.variable.name())
            && !self.scope.iter().any(|(n, _)| n == self.variable.name())
        {
            self.selects.push(field.to_owned());
        }
    }

    fn field(&self, operand: Type, field: &str) -> Result<Type, String> {
        match operand {
            Type::Claims => Ok(Type::Any),
            Type::Map | Type::Dyn | Type::Any => Ok(Type::Dyn),
            // A select on an optional is an optional of the field.
            Type::Optional | Type::OptionalAny => Ok(Type::Optional),
            Type::User => match field {
                "username" | "uid" => Ok(Type::String),
                "groups" => Ok(Type::List),
                "extra" => Ok(Type::Map),
                _ => Err(format!("undefined field '{field}'")),
            },
            other => Err(format!(
                "type '{}' does not support field selection",
                name(other)
            )),
        }
    }

    fn call(&mut self, call: &cel::common::ast::CallExpr, depth: usize) -> Result<Type, String> {
        let f = call.func_name.as_str();
        // `_?._`: the optional select; its second argument is the field name as a string.
        if f == "_?._"
            && let [operand, field] = call.args.as_slice()
        {
            let t = self.expr(operand, depth)?;
            if let Expr::Literal(LiteralValue::String(s)) = &field.expr {
                escaped(s.as_ref())?;
                self.note_select(operand, s.as_ref());
            }
            self.count(depth);
            return match t {
                Type::Claims => Ok(Type::OptionalAny),
                Type::Map
                | Type::Dyn
                | Type::Any
                | Type::User
                | Type::Optional
                | Type::OptionalAny => Ok(Type::Optional),
                other => Err(format!(
                    "type '{}' does not support field selection",
                    name(other)
                )),
            };
        }
        // `sets.contains(a, b)`: a namespaced function parses as a call on an identifier;
        // cel-go resolves the qualified name first, unless the identifier is declared.
        if let Some(t) = &call.target
            && let Expr::Ident(namespace) = &t.expr
            && namespace != self.variable.name()
            && !self.scope.iter().any(|(n, _)| n == namespace)
        {
            let qualified = format!("{namespace}.{f}");
            if qualified == "lists.range" {
                self.note_range(call)?;
            }
            let mut args = Vec::with_capacity(call.args.len());
            for a in &call.args {
                args.push(self.expr(a, depth)?);
            }
            let (output, linear) = signature(&qualified, None, &args)?;
            if linear > 0 {
                self.count(depth + linear);
            }
            return Ok(output);
        }
        let target = match &call.target {
            Some(t) => Some(self.expr(t, depth)?),
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            args.push(self.expr(a, depth)?);
        }
        if matches!(f, "_[_]" | "_[?_]")
            && let Some(IdedExpr {
                expr: Expr::Literal(LiteralValue::String(key)),
                ..
            }) = call.args.get(1)
        {
            escaped(key.as_ref())?;
        }
        let (output, linear) = signature(f, target, &args)?;
        // A function linear (or quadratic) in its input's size counts one level (or two) deeper.
        if linear > 0 {
            self.count(depth + linear);
        }
        Ok(output)
    }
}

/// Refuses a field or key the kube-apiserver would unescape ([`super::value::is_escaped_name`]).
fn escaped(name: &str) -> Result<(), String> {
    if super::value::is_escaped_name(name) {
        return Err(format!(
            "the kube-apiserver reads {name:?} as an escaped name (__dot__, __dash__, __slash__, __underscores__, __<keyword>__) and gatehouse does not unescape names: write the claim's own name as an index, claims['a.b']"
        ));
    }
    Ok(())
}

/// cel-go's name of a type, for messages.
fn name(t: Type) -> &'static str {
    match t {
        Type::Bool => "bool",
        Type::Int => "int",
        Type::Uint => "uint",
        Type::Double => "double",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Null => "null_type",
        Type::List => "list",
        Type::Map => "map",
        Type::Optional => "optional_type",
        Type::Timestamp => "google.protobuf.Timestamp",
        Type::Duration => "google.protobuf.Duration",
        Type::Type => "type",
        Type::User => "kubernetes.UserInfo",
        Type::Claims => "map",
        Type::Any => "any",
        Type::OptionalAny => "optional_type",
        Type::Dyn => "dyn",
    }
}

/// The join of two types as cel-go's checker makes it for a conditional or an `orValue`:
/// the type when both agree, `any` when one is `any` (the most general), else `dyn`.
fn join(a: Type, b: Type) -> Type {
    if a == b {
        a
    } else if a == Type::Any || b == Type::Any {
        Type::Any
    } else {
        Type::Dyn
    }
}

/// The result of an arithmetic operator: the operands' type when both agree (and are
/// known), the known one when the other is only known at evaluation, else `dyn`.
fn arithmetic(a: Type, b: Type) -> Type {
    let unknown = |t: Type| matches!(t, Type::Any | Type::Dyn);
    match (unknown(a), unknown(b)) {
        (false, false) if a == b => a,
        (false, true) => a,
        (true, false) => b,
        _ => Type::Dyn,
    }
}

/// The result type of function `f` called on `target` (a member call) with `args`, and how
/// many levels of the input's size it costs (0: constant, 1: linear, 2: quadratic). Functions
/// the kube-apiserver's environment does not have, or gatehouse does not implement, are refused.
fn signature(f: &str, target: Option<Type>, args: &[Type]) -> Result<(Type, usize), String> {
    use Type::{Bool, Double, Dyn, Int, List, Optional, String as Str};
    // A claim (`any`) as a receiver is resolved like `dyn`: by its value, when evaluated.
    let receiver = target.map(|t| if t == Type::Any { Dyn } else { t });
    let out = match (f, receiver, args) {
        // Operators.
        ("_==_" | "_!=_", None, [_, _]) => (Bool, 1),
        ("_<_" | "_<=_" | "_>_" | "_>=_", None, [_, _]) => (Bool, 1),
        ("_&&_" | "_||_", None, [_, _]) => (Bool, 0),
        ("@not_strictly_false", None, [_]) => (Bool, 0),
        ("!_", None, [_]) => (Bool, 0),
        ("@in", None, [_, _]) => (Bool, 1),
        ("_?_:_", None, [_, a, b]) => (join(*a, *b), 0),
        ("_+_", None, [a, b]) => (arithmetic(*a, *b), 1),
        ("_-_" | "_*_" | "_/_" | "_%_", None, [a, b]) => (arithmetic(*a, *b), 0),
        ("-_", None, [a]) => (*a, 0),
        ("_[_]", None, [Type::Claims, _]) => (Type::Any, 0),
        ("_[_]", None, [_, _]) => (Dyn, 0),
        ("_[?_]", None, [Type::Claims, _]) => (Type::OptionalAny, 0),
        ("_[?_]", None, [_, _]) => (Optional, 0),
        // Conversions and the standard functions.
        ("size", None, [_]) | ("size", Some(_), []) => (Int, 0),
        ("int", None, [_]) => (Int, 0),
        ("uint", None, [_]) => (Type::Uint, 0),
        ("double", None, [_]) => (Double, 0),
        ("string", None, [_]) => (Str, 1),
        ("bytes", None, [_]) => (Type::Bytes, 1),
        ("bool", None, [_]) => (Bool, 0),
        ("dyn", None, [_]) => (Dyn, 0),
        ("type", None, [_]) => (Type::Type, 0),
        ("timestamp", None, [_]) => (Type::Timestamp, 0),
        ("duration", None, [_]) => (Type::Duration, 0),
        // Strings (the standard library and Kubernetes' strings extension, version 2).
        ("contains" | "startsWith" | "endsWith" | "matches", Some(_), [_]) => (Bool, 1),
        ("matches", None, [_, _]) => (Bool, 1),
        ("lowerAscii" | "upperAscii" | "trim" | "reverse", Some(Str | Dyn), []) => (Str, 1),
        // The result can be the string's length times the replacement's: quadratic.
        ("replace", Some(_), [_, _] | [_, _, _]) => (Str, 2),
        ("substring", Some(_), [_] | [_, _]) => (Str, 1),
        ("charAt", Some(_), [_]) => (Str, 1),
        ("indexOf" | "lastIndexOf", Some(Str), [_] | [_, _]) => (Int, 1),
        ("split", Some(_), [_] | [_, _]) => (List, 1),
        ("join", Some(_), [] | [_]) => (Str, 1),
        ("format", Some(_), [_]) => (Str, 1),
        ("strings.quote", None, [_]) => (Str, 1),
        // Kubernetes' regex library.
        ("find", Some(_), [_]) => (Str, 1),
        ("findAll", Some(_), [_] | [_, _]) => (List, 1),
        // Lists (Kubernetes' lists library and cel-go's lists extension, version 3).
        ("indexOf" | "lastIndexOf", Some(List | Dyn), [_]) => (Int, 1),
        ("isSorted", Some(_), []) => (Bool, 1),
        ("sum" | "min" | "max", Some(_), []) => (Dyn, 1),
        ("distinct", Some(_), []) => (List, 2),
        ("flatten", Some(_), [] | [_]) => (List, 2),
        ("reverse", Some(List), []) => (List, 1),
        ("slice", Some(_), [_, _]) => (List, 1),
        ("sort", Some(_), []) => (List, 2),
        ("lists.range", None, [_]) => (List, 1),
        // Sets (cel-go's sets extension).
        ("sets.contains" | "sets.equivalent" | "sets.intersects", None, [_, _]) => (Bool, 2),
        // Optionals.
        ("optional.of" | "optional.ofNonZeroValue", None, [_]) => (Optional, 0),
        ("optional.none", None, []) => (Optional, 0),
        ("hasValue", Some(_), []) => (Bool, 0),
        ("value", Some(Type::OptionalAny), []) => (Type::Any, 0),
        ("value", Some(_), []) => (Dyn, 0),
        ("orValue", Some(Type::OptionalAny), [b]) => (join(Type::Any, *b), 0),
        ("orValue", Some(_), [b]) => (join(Dyn, *b), 0),
        ("or", Some(_), [_]) => (Optional, 0),
        // Macros written wrongly (the parser expands them when well-formed).
        ("exists" | "all" | "exists_one" | "map" | "filter", _, _) => {
            return Err(format!(
                "the macro '{f}' is written with a variable and a predicate: list.{f}(x, predicate)"
            ));
        }
        _ => {
            return Err(match target {
                Some(_) => format!(
                    "found no matching overload for '{f}' applied to a receiver and {} argument(s), or gatehouse does not implement it",
                    args.len()
                ),
                None => format!(
                    "undeclared reference to '{f}' (gatehouse implements the functions of the kube-apiserver's claims environment listed in docs/authentication.md)"
                ),
            });
        }
    };
    Ok(out)
}
