//! Compiles the facade's filter tree to SQL with bound parameters. Every
//! comparison of an absent (NULL) attribute is false, never NULL, so `not`
//! and `ne` are true for it. No `LIKE` (its wildcards and SQLite's ASCII-only
//! case folding) and no `lower()`: case-insensitive attributes compare the
//! case-folded key columns against a value folded the same way in Rust.
use provisioning_proto::pb::{self, Attribute, Operator, comparison::Value, filter::Kind};
use sea_orm::{
    DbBackend,
    sea_query::{Expr, ExprTrait as _, Func, SimpleExpr},
};
use uuid::Uuid;

use crate::{
    clock,
    db::entities::user::{self, Column},
    error::{Error, Result},
    keys,
};

const MAX_DEPTH: usize = 64;
const MAX_NODES: usize = 1_000;

pub fn compile(filter: &pb::Filter, backend: DbBackend) -> Result<SimpleExpr> {
    let mut nodes = 0;
    Compiler {
        backend,
        nodes: &mut nodes,
    }
    .node(filter, 0)
}

struct Compiler<'a> {
    backend: DbBackend,
    nodes: &'a mut usize,
}

fn col(column: Column) -> SimpleExpr {
    Expr::col((user::Entity, column))
}

fn constant(value: bool) -> SimpleExpr {
    Expr::cust(if value { "1 = 1" } else { "1 = 0" })
}

enum AttrKind {
    /// Compared against a case-folded key column.
    Folded(Column),
    /// Compared exactly.
    Exact(Column),
    Id,
    Bool(Column),
    Time(Column),
}

fn attribute(attr: i32) -> Result<(AttrKind, bool)> {
    // (kind, nullable)
    let attr = Attribute::try_from(attr).map_err(|_| Error::InvalidFilter("unknown attribute"))?;
    Ok(match attr {
        Attribute::Unspecified => return Err(Error::InvalidFilter("unknown attribute")),
        Attribute::Id => (AttrKind::Id, false),
        Attribute::ExternalId => (AttrKind::Exact(Column::ExternalId), true),
        Attribute::UserName => (AttrKind::Folded(Column::UserNameKey), false),
        Attribute::GivenName => (AttrKind::Folded(Column::GivenNameKey), true),
        Attribute::FamilyName => (AttrKind::Folded(Column::FamilyNameKey), true),
        Attribute::Email => (AttrKind::Folded(Column::EmailKey), true),
        Attribute::PhoneNumber => (AttrKind::Exact(Column::PhoneNumber), true),
        Attribute::Timezone => (AttrKind::Exact(Column::Timezone), true),
        Attribute::Role => (AttrKind::Folded(Column::Role), false),
        Attribute::Active => (AttrKind::Bool(Column::Active), false),
        Attribute::Created => (AttrKind::Time(Column::CreatedAt), false),
        Attribute::LastModified => (AttrKind::Time(Column::UpdatedAt), false),
    })
}

fn column_of(kind: &AttrKind) -> Column {
    match kind {
        AttrKind::Folded(c) | AttrKind::Exact(c) | AttrKind::Bool(c) | AttrKind::Time(c) => *c,
        AttrKind::Id => Column::Id,
    }
}

impl Compiler<'_> {
    fn node(&mut self, filter: &pb::Filter, depth: usize) -> Result<SimpleExpr> {
        *self.nodes += 1;
        if depth > MAX_DEPTH || *self.nodes > MAX_NODES {
            return Err(Error::InvalidFilter(
                "the filter is nested too deeply or too large",
            ));
        }
        match filter.kind.as_ref() {
            None => Err(Error::InvalidFilter("empty filter node")),
            Some(Kind::And(list)) => self.list(&list.filters, depth, true),
            Some(Kind::Or(list)) => self.list(&list.filters, depth, false),
            Some(Kind::Not(inner)) => Ok(self.node(inner, depth + 1)?.not()),
            Some(Kind::Constant(value)) => Ok(constant(*value)),
            Some(Kind::Present(attr)) => {
                let (kind, nullable) = attribute(*attr)?;
                Ok(present(&kind, nullable))
            }
            Some(Kind::Compare(cmp)) => self.compare(cmp),
        }
    }

    fn list(&mut self, filters: &[pb::Filter], depth: usize, all: bool) -> Result<SimpleExpr> {
        let mut exprs = filters.iter().map(|f| self.node(f, depth + 1));
        let Some(first) = exprs.next() else {
            return Ok(constant(all));
        };
        let mut acc = first?;
        for expr in exprs {
            let expr = expr?;
            acc = if all { acc.and(expr) } else { acc.or(expr) };
        }
        Ok(acc)
    }

    fn compare(&mut self, cmp: &pb::Comparison) -> Result<SimpleExpr> {
        let (kind, nullable) = attribute(cmp.attribute)?;
        let op =
            Operator::try_from(cmp.op).map_err(|_| Error::InvalidFilter("unknown operator"))?;
        let value = cmp
            .value
            .as_ref()
            .ok_or(Error::InvalidFilter("comparison without a value"))?;
        if let Value::NullValue(_) = value {
            return match op {
                Operator::Eq => Ok(present(&kind, nullable).not()),
                Operator::Ne => Ok(present(&kind, nullable)),
                _ => Err(Error::InvalidFilter(
                    "null can only be compared with eq or ne",
                )),
            };
        }
        if op == Operator::Ne {
            let eq = pb::Comparison {
                op: Operator::Eq as i32,
                ..cmp.clone()
            };
            return Ok(self.compare(&eq)?.not());
        }
        let column = col(column_of(&kind));
        let test = match (&kind, value) {
            (AttrKind::Id, Value::StringValue(s)) => match op {
                Operator::Eq => match Uuid::parse_str(s) {
                    Ok(id) => column.eq(id),
                    Err(_) => constant(false),
                },
                _ => return Err(Error::InvalidFilter("id supports only eq and ne")),
            },
            (AttrKind::Folded(_), Value::StringValue(s)) => self.text(op, column, keys::fold(s))?,
            (AttrKind::Exact(_), Value::StringValue(s)) => self.text(op, column, s.clone())?,
            (AttrKind::Bool(_), Value::BoolValue(b)) => match op {
                Operator::Eq => column.eq(*b),
                _ => return Err(Error::InvalidFilter("booleans support only eq and ne")),
            },
            (AttrKind::Time(_), Value::TimeValue(ts)) => {
                let at = clock::micros(ts);
                match op {
                    Operator::Eq => column.eq(at),
                    Operator::Gt => column.gt(at),
                    Operator::Ge => column.gte(at),
                    Operator::Lt => column.lt(at),
                    Operator::Le => column.lte(at),
                    _ => {
                        return Err(Error::InvalidFilter(
                            "dates support eq, ne, gt, ge, lt and le",
                        ));
                    }
                }
            }
            _ => return Err(Error::InvalidFilter("the value does not fit the attribute")),
        };
        Ok(if nullable {
            col(column_of(&kind)).is_not_null().and(test)
        } else {
            test
        })
    }

    fn text(&self, op: Operator, column: SimpleExpr, value: String) -> Result<SimpleExpr> {
        let postgres = self.backend == DbBackend::Postgres;
        // Byte-wise ordering on both databases (PostgreSQL would otherwise use
        // the database's locale).
        let ordered = |column: SimpleExpr| -> SimpleExpr {
            if postgres {
                Expr::cust_with_exprs("$1 COLLATE \"C\"", [column])
            } else {
                column
            }
        };
        let position = |column: SimpleExpr, value: String| -> SimpleExpr {
            let func = if postgres { "strpos" } else { "instr" };
            Func::cust(func).arg(column).arg(value).into()
        };
        Ok(match op {
            Operator::Eq => column.eq(value),
            Operator::Co if value.is_empty() => constant(true),
            Operator::Co => position(column, value).gt(0),
            Operator::Sw if value.is_empty() => constant(true),
            Operator::Sw => position(column, value).eq(1),
            Operator::Ew if value.is_empty() => constant(true),
            Operator::Ew => {
                let len = i32::try_from(value.chars().count()).unwrap_or(i32::MAX);
                let length: SimpleExpr = Func::char_length(column.clone()).into();
                let start = SimpleExpr::from(Func::char_length(column.clone())).add(1 - len);
                length
                    .gte(len)
                    .and(Func::cust("substr").arg(column).arg(start).eq(value))
            }
            Operator::Gt => ordered(column).gt(value),
            Operator::Ge => ordered(column).gte(value),
            Operator::Lt => ordered(column).lt(value),
            Operator::Le => ordered(column).lte(value),
            Operator::Ne | Operator::Unspecified => {
                return Err(Error::InvalidFilter("unknown operator"));
            }
        })
    }
}

fn present(kind: &AttrKind, nullable: bool) -> SimpleExpr {
    if nullable {
        col(column_of(kind)).is_not_null()
    } else {
        constant(true)
    }
}
