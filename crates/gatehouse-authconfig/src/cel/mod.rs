//! CEL expressions of an `AuthenticationConfiguration`, compiled once when the file is loaded
//! and evaluated for every new token.
//!
//! The kube-apiserver compiles these expressions with cel-go in its base environment
//! (k8s.io/apiserver `pkg/cel/environment`) and one variable: `claims` (a map of string to any)
//! for claim mappings and claim validation rules, `user` (a `kubernetes.UserInfo`) for user
//! validation rules. gatehouse evaluates them with cel-rust (the `cel` crate), in an
//! environment built to give the same answers:
//!
//! - **Checked at load like cel-go checks them** ([`check`]): every identifier is the one
//!   variable or a comprehension's own; every function is one the kube-apiserver offers (an
//!   expression using one gatehouse does not implement is refused at load, never evaluated
//!   wrongly); validation rules must be typed `bool` (so `claims.admin` alone is refused, as the
//!   kube-apiserver refuses it: `claims.admin == true` is the way to write it).
//! - **The functions Kubernetes adds** where cel-rust lacks them ([`library`]): `sets`, the
//!   regex `find`/`findAll`, the list functions of its `lists` library.
//! - **Claims as cel-go sees them** ([`value`]): every JSON number is a double (Go's JSON
//!   decoding into `any`), objects are maps, `null` is null.
//! - **A cost limit**: the kube-apiserver stops an evaluation after 1,000,000 cost units
//!   (`PerCallLimit`). cel-rust has no cost tracking, so the bound is computed instead: at load,
//!   how much of each expression runs inside how many nested comprehensions (and linear-time
//!   functions); per token, the largest list, map or string in its claims. An expression whose
//!   bound with this token's claims exceeds the limit is not evaluated and the token is refused,
//!   as the kube-apiserver refuses a token whose evaluation runs out of budget. The bound is an
//!   over-estimate, so gatehouse refuses a little earlier than the kube-apiserver would.
//! - **Lists of strings the kube-apiserver cannot read back** ([`Environment::eval_strings`]):
//!   it takes a groups or extra expression's value as a string list only when cel-go holds
//!   it as a generic list; `split` and `findAll` return native string lists, which its
//!   conversion refuses ("expression must return a string or a list of strings"), while the
//!   same strings through `map`, `filter`, `+` or a list literal pass. gatehouse finds the
//!   expression's result position at load (through conditionals and `orValue`) and refuses a
//!   `split`/`findAll` list there, as the kube-apiserver does.

pub mod check;
pub mod library;
pub mod value;

use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr};
use cel::objects::OptionalValue;
use cel::{Context, Env, Program, Value};

pub use check::Type;

/// The kube-apiserver's per-evaluation cost limit (`celconfig.PerCallLimit`).
pub const COST_LIMIT: u64 = 1_000_000;

/// The longest expression accepted, in bytes (cel-go's default expression size limit is
/// 100,000 code points; this is the same order).
pub const MAX_EXPRESSION_LEN: usize = 100_000;

/// The variable an expression sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    /// `claims`: the token's claims (claim mappings, claim validation rules).
    Claims,
    /// `user`: the mapped user (user validation rules).
    User,
}

impl Variable {
    /// The variable's name in expressions.
    pub fn name(self) -> &'static str {
        match self {
            Self::Claims => "claims",
            Self::User => "user",
        }
    }
}

/// The environment every expression is compiled and evaluated in: cel-rust's standard
/// library, its strings and lists extensions, and the Kubernetes functions of [`library`].
#[derive(Clone)]
pub struct Environment {
    env: Arc<Env>,
    /// The root context: the environment and [`library`]'s functions; every evaluation runs in
    /// a child scope of it holding the one variable.
    root: Arc<Context<'static, 'static>>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Environment")
    }
}

impl Environment {
    /// Builds the environment.
    pub fn new() -> Result<Self, String> {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .map_err(|e| e.to_string())?;
        env.add_extension(cel::extensions::lists)
            .map_err(|e| e.to_string())?;
        let env = Arc::new(env);
        let mut root = Context::with_env(Arc::clone(&env));
        library::register(&mut root).map_err(|e| e.to_string())?;
        Ok(Self {
            env,
            root: Arc::new(root),
        })
    }

    /// Compiles `source` for `variable`: parsed, checked ([`check`]), its cost shape taken.
    /// `want_bool` requires the expression to be typed `bool` (validation rules).
    pub fn compile(
        &self,
        source: &str,
        variable: Variable,
        want_bool: bool,
    ) -> Result<Expression, String> {
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(format!(
                "compilation failed: the expression is {} bytes long, more than the {MAX_EXPRESSION_LEN} allowed",
                source.len()
            ));
        }
        let program = self
            .env
            .compile(source)
            .map_err(|e| format!("compilation failed: {}", one_line(&e.to_string())))?;
        let checked = check::check(program.expression(), variable)
            .map_err(|e| format!("compilation failed: {e}"))?;
        if want_bool && checked.output != Type::Bool {
            return Err("must evaluate to bool".to_owned());
        }
        let result = Arc::new(result_shape(program.expression()));
        Ok(Expression {
            source: source.to_owned(),
            result,
            program: Arc::new(program),
            variable,
            output: checked.output,
            cost: checked.cost,
            range: checked.range,
            selects: checked.selects,
        })
    }

    /// Evaluates a compiled expression against `input` (the variable's value), after checking
    /// its cost bound for an input whose largest collection or string has `input_size` elements.
    pub fn eval(
        &self,
        expression: &Expression,
        input: &Value,
        input_size: u64,
    ) -> Result<Value, EvalError> {
        let context = self.context(expression, input, input_size)?;
        expression
            .program
            .execute(&context)
            .map_err(|e| EvalError::Failed(one_line(&e.to_string())))
    }

    /// [`Environment::eval`] for a groups or extra expression, whose value the kube-apiserver
    /// converts to a list of strings: a `split` or `findAll` list in the result position is
    /// [`EvalError::NativeStringList`] (see the module's doc).
    pub fn eval_strings(
        &self,
        expression: &Expression,
        input: &Value,
        input_size: u64,
    ) -> Result<Value, EvalError> {
        let context = self.context(expression, input, input_size)?;
        eval_shape(&context, &expression.result)
    }

    fn context<'a>(
        &'a self,
        expression: &Expression,
        input: &Value,
        input_size: u64,
    ) -> Result<Context<'a, 'static>, EvalError> {
        let cost = expression.cost_bound(input_size);
        if cost > COST_LIMIT {
            return Err(EvalError::CostLimit { cost });
        }
        let mut context = self.root.new_inner_scope();
        context.add_variable_from_value(expression.variable.name(), input.clone());
        Ok(context)
    }
}

/// Where an expression's value comes from, as far as the kube-apiserver's string-list
/// conversion can tell the difference.
#[derive(Debug, Clone)]
enum Shape {
    /// A `split` or `findAll` call: a native string list.
    Native(IdedExpr),
    /// Anything else: a generic value.
    Other(IdedExpr),
    /// `cond ? a : b`.
    Conditional(IdedExpr, Box<Shape>, Box<Shape>),
    /// `optional.orValue(alternative)`, and the shape of the optional's value when it is
    /// written `optional.of(x)`.
    OrValue(IdedExpr, Option<Box<Shape>>, Box<Shape>),
}

/// `x` when `e` is `optional.of(x)` (parsed as a call of `of` on the identifier `optional`).
fn optional_of(e: &IdedExpr) -> Option<&IdedExpr> {
    let Expr::Call(call) = &e.expr else {
        return None;
    };
    match (
        call.func_name.as_str(),
        call.target.as_deref(),
        call.args.as_slice(),
    ) {
        ("optional.of", None, [x]) => Some(x),
        (
            "of",
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }),
            [x],
        ) if ns == "optional" => Some(x),
        _ => None,
    }
}

fn result_shape(e: &IdedExpr) -> Shape {
    if let Expr::Call(call) = &e.expr {
        match (call.func_name.as_str(), &call.target, call.args.as_slice()) {
            ("_?_:_", None, [c, a, b]) => {
                return Shape::Conditional(
                    c.clone(),
                    Box::new(result_shape(a)),
                    Box::new(result_shape(b)),
                );
            }
            ("orValue", Some(target), [alternative]) => {
                return Shape::OrValue(
                    (**target).clone(),
                    optional_of(target).map(|x| Box::new(result_shape(x))),
                    Box::new(result_shape(alternative)),
                );
            }
            // `optional.of(x).value()` is `x`.
            ("value", Some(target), []) => {
                if let Some(x) = optional_of(target) {
                    return result_shape(x);
                }
            }
            // `[a, b][1]` is `b`.
            ("_[_]", None, [list, index]) => {
                if let (Expr::List(list), Expr::Literal(cel::common::ast::LiteralValue::Int(i))) =
                    (&list.expr, &index.expr)
                    && let Some(element) = usize::try_from(*i.inner())
                        .ok()
                        .and_then(|i| list.elements.get(i))
                {
                    return result_shape(element);
                }
            }
            ("split" | "findAll", Some(_), _) => return Shape::Native(e.clone()),
            // `dyn()` passes its value through: a native list stays one.
            ("dyn", None, [inner]) => return result_shape(inner),
            _ => {}
        }
    }
    Shape::Other(e.clone())
}

fn eval_shape(context: &Context<'_, '_>, shape: &Shape) -> Result<Value, EvalError> {
    let resolve = |e: &IdedExpr| {
        context
            .resolve(e)
            .map_err(|e| EvalError::Failed(one_line(&e.to_string())))
    };
    match shape {
        Shape::Other(e) => resolve(e),
        Shape::Native(e) => match resolve(e)? {
            Value::List(_) => Err(EvalError::NativeStringList),
            other => Ok(other),
        },
        Shape::Conditional(c, a, b) => match resolve(c)? {
            Value::Bool(true) => eval_shape(context, a),
            Value::Bool(false) => eval_shape(context, b),
            other => Err(EvalError::Failed(format!(
                "no such overload: the condition is {:?}, not a bool",
                other.type_of()
            ))),
        },
        Shape::OrValue(target, held_shape, alternative) => {
            let optional = resolve(target)?;
            let held = <&OptionalValue>::try_from(&optional)
                .map_err(|e| EvalError::Failed(one_line(&e.to_string())))?
                .value()
                .cloned();
            match (held, held_shape) {
                (Some(_), Some(shape)) => eval_shape(context, shape),
                (Some(v), None) => Ok(v),
                (None, _) => eval_shape(context, alternative),
            }
        }
    }
}

/// Why an evaluation gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression's cost bound for this input is over [`COST_LIMIT`].
    #[error(
        "operation cancelled: actual cost limit exceeded (gatehouse's bound for these claims is {cost}, the limit {COST_LIMIT})"
    )]
    CostLimit {
        /// The bound.
        cost: u64,
    },
    /// The evaluation failed (no such key, no matching overload, ...).
    #[error("{0}")]
    Failed(String),
    /// A `split` or `findAll` list as a groups or extra value (see the module's doc).
    #[error(
        "expression must return a string or a list of strings (the kube-apiserver does not read the list split or findAll return as one: pass it through map, or write dyn(...) + [])"
    )]
    NativeStringList,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    result: Arc<Shape>,
    program: Arc<Program>,
    variable: Variable,
    output: Type,
    cost: Vec<u64>,
    range: u64,
    selects: Vec<String>,
}

impl Expression {
    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The type the checker gave the expression.
    pub fn output(&self) -> Type {
        self.output
    }

    /// Whether the expression selects `variable.field` (`claims.email`, `claims.?email`), as the
    /// kube-apiserver's `hasSelectExp` finds it.
    pub fn selects(&self, field: &str) -> bool {
        self.selects.iter().any(|f| f == field)
    }

    /// The cost bound for an input whose largest collection or string has `size` elements:
    /// the sum over nesting depths k of (nodes at depth k) * size^k, saturating.
    pub fn cost_bound(&self, size: u64) -> u64 {
        let size = size.max(self.range).max(1);
        let mut total: u64 = 0;
        let mut factor: u64 = 1;
        for nodes in &self.cost {
            total = total.saturating_add(nodes.saturating_mul(factor));
            factor = factor.saturating_mul(size);
        }
        total
    }
}

/// Error texts of the parser span lines; a config problem is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;
