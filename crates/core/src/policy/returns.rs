//! Where a policy can hand back its value. Rhai drops the position of a
//! `return` once it has run, so when a policy returns the wrong type, the
//! report points at the return statements (and the final statement) whose
//! expression could have produced that type, found here once at load time.

use rhai::{AST, Position};
use rhai::{ASTNode, Expr, Stmt};

/// The type an expression is known to have before it runs, where the syntax
/// says (a literal, an array, a call of an action constructor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Array,
    Action,
    Map,
    String,
    Int,
    Float,
    Bool,
    Unit,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnSite {
    pub pos: Position,
    pub known: Known,
}

/// Names of the functions that make an action; their calls have type Action.
const CONSTRUCTORS: &[&str] = &[
    "wait",
    "scale_nodes",
    "patch_spec",
    "rollback",
    "delete_pods",
    "escalate",
];

/// Functions of the policy API that return an array of actions.
const ARRAY_FUNCTIONS: &[&str] = &["choose", "ladder"];

fn known(expr: &Expr) -> Known {
    match expr {
        Expr::Array(..) => Known::Array,
        Expr::Map(..) => Known::Map,
        Expr::StringConstant(..) | Expr::InterpolatedString(..) | Expr::CharConstant(..) => {
            Known::String
        }
        Expr::IntegerConstant(..) => Known::Int,
        Expr::FloatConstant(..) => Known::Float,
        Expr::BoolConstant(..) => Known::Bool,
        Expr::Unit(..) => Known::Unit,
        Expr::DynamicConstant(value, _) => Known::of_type_name(value.type_name()),
        Expr::FnCall(call, _) if call.namespace.is_empty() => {
            if CONSTRUCTORS.contains(&call.name.as_str()) {
                Known::Action
            } else if ARRAY_FUNCTIONS.contains(&call.name.as_str()) {
                Known::Array
            } else {
                Known::Unknown
            }
        }
        _ => Known::Unknown,
    }
}

impl Known {
    pub fn of_type_name(name: &str) -> Self {
        match name {
            "array" => Known::Array,
            "map" => Known::Map,
            "string" | "char" => Known::String,
            "i64" | "i32" | "int" => Known::Int,
            "f64" | "f32" | "float" => Known::Float,
            "bool" => Known::Bool,
            "()" => Known::Unit,
            n if n.ends_with("Action") => Known::Action,
            _ => Known::Unknown,
        }
    }
}

/// The `return` statements of the policy's top level (not those of its
/// functions or closures, which return to their caller) and its last
/// statement, whose value is the policy's when it ends without `return`.
pub fn sites(ast: &AST) -> Vec<ReturnSite> {
    let mut out = Vec::new();
    let statements = ast.statements();
    let mut path = Vec::new();
    for stmt in statements {
        stmt.walk(&mut path, &mut |nodes: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Return(value, flags, pos))) = nodes.last()
                && !flags.intersects(rhai::ASTFlags::BREAK)
            {
                out.push(ReturnSite {
                    pos: *pos,
                    known: value.as_deref().map_or(Known::Unit, known),
                });
            }
            true
        });
        path.clear();
    }
    match statements.last() {
        Some(Stmt::Expr(expr)) => out.push(ReturnSite {
            pos: expr.start_position(),
            known: known(expr),
        }),
        Some(Stmt::FnCall(call, pos)) => out.push(ReturnSite {
            pos: *pos,
            known: known(&Expr::FnCall(call.clone(), *pos)),
        }),
        Some(Stmt::Return(..)) => {}
        Some(other) => out.push(ReturnSite {
            pos: other.position(),
            known: if matches!(other, Stmt::Var(..)) {
                Known::Unit
            } else {
                Known::Unknown
            },
        }),
        None => out.push(ReturnSite {
            pos: Position::new(1, 1),
            known: Known::Unit,
        }),
    }
    out
}

/// The sites that could have returned a value of this type: those known to
/// give it, then those whose type is not known from the syntax.
pub fn candidates(sites: &[ReturnSite], actual: Known) -> Vec<&ReturnSite> {
    let exact: Vec<&ReturnSite> = sites.iter().filter(|s| s.known == actual).collect();
    if !exact.is_empty() {
        return exact;
    }
    sites.iter().filter(|s| s.known == Known::Unknown).collect()
}
