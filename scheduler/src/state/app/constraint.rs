//! Marathon's placement constraints as an app states them: `[field,
//! OPERATOR]` or `[field, OPERATOR, value]`, parsed and checked here (the
//! app model validates them); matching them against offers is
//! [`crate::offers::constraints`]'s.

use std::fmt;

use regex::Regex;

/// A parsed constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// The field it looks at.
    pub field: String,
    /// What it requires.
    pub operator: Operator,
}

/// The operators Marathon accepts.
#[derive(Debug, Clone)]
pub enum Operator {
    /// No two instances share a value.
    Unique,
    /// All instances share one value: the given one, or the first placed one's.
    Cluster(Option<String>),
    /// Spread evenly over the values, over at least this many groups.
    GroupBy(u32),
    /// The value matches the regex, anchored at both ends.
    Like(Regex),
    /// The value does not match the regex (or the field is absent).
    Unlike(Regex),
    /// At most this many instances per value.
    MaxPer(u32),
    /// The value equals this one (scalars normalised).
    Is(String),
}

impl Operator {
    /// The operator's name as written in app definitions.
    pub fn name(&self) -> &'static str {
        match self {
            Operator::Unique => "UNIQUE",
            Operator::Cluster(_) => "CLUSTER",
            Operator::GroupBy(_) => "GROUP_BY",
            Operator::Like(_) => "LIKE",
            Operator::Unlike(_) => "UNLIKE",
            Operator::MaxPer(_) => "MAX_PER",
            Operator::Is(_) => "IS",
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.field, self.operator.name())?;
        match &self.operator {
            Operator::Cluster(Some(v)) | Operator::Is(v) => write!(f, ":{v}"),
            Operator::GroupBy(n) if *n > 0 => write!(f, ":{n}"),
            Operator::MaxPer(n) => write!(f, ":{n}"),
            Operator::Like(r) | Operator::Unlike(r) => write!(f, ":{}", unanchored(r)),
            _ => Ok(()),
        }
    }
}

fn unanchored(r: &Regex) -> &str {
    let s = r.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// Why a constraint is invalid; the message is what the API shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// Not 2 or 3 strings.
    #[error("Each constraint must have either 2 or 3 fields")]
    Arity,
    /// An operator Marathon does not know.
    #[error(
        "Constraint operator must be one of the following: [CLUSTER, GROUP_BY, IS, LIKE, MAX_PER, UNIQUE, UNLIKE]"
    )]
    UnknownOperator,
    /// The operator needs a value or must not have one.
    #[error("{0}")]
    Value(String),
}

impl Constraint {
    /// Parses `[field, OPERATOR]` or `[field, OPERATOR, value]`.
    pub fn parse(parts: &[String]) -> Result<Constraint, ConstraintError> {
        let (field, op, value) = match parts {
            [field, op] => (field, op, None),
            [field, op, value] => (field, op, Some(value.as_str())),
            _ => return Err(ConstraintError::Arity),
        };
        let operator =
            match op.as_str() {
                "UNIQUE" => match value {
                    None => Operator::Unique,
                    Some(_) => {
                        return Err(ConstraintError::Value(
                            "UNIQUE does not accept a value".into(),
                        ));
                    }
                },
                "CLUSTER" => Operator::Cluster(value.filter(|v| !v.is_empty()).map(str::to_string)),
                "GROUP_BY" => match value {
                    None => Operator::GroupBy(0),
                    Some(v) => Operator::GroupBy(v.parse().map_err(|_| {
                        ConstraintError::Value("Value was not a valid integer".into())
                    })?),
                },
                "MAX_PER" => match value.map(str::parse::<u32>) {
                    Some(Ok(n)) => Operator::MaxPer(n),
                    _ => {
                        return Err(ConstraintError::Value(
                            "Value was not a valid integer".into(),
                        ));
                    }
                },
                "LIKE" | "UNLIKE" => {
                    let Some(pattern) = value else {
                        return Err(ConstraintError::Value(format!(
                            "A regular expression value must be provided for {op}"
                        )));
                    };
                    // Java's String.matches: the whole value must match.
                    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                        ConstraintError::Value(format!(
                            "'{pattern}' is not a valid regular expression: {e}"
                        ))
                    })?;
                    if op == "LIKE" {
                        Operator::Like(regex)
                    } else {
                        Operator::Unlike(regex)
                    }
                }
                "IS" => match value {
                    Some(v) => Operator::Is(v.to_string()),
                    None => return Err(ConstraintError::Value("IS requires a value".into())),
                },
                _ => return Err(ConstraintError::UnknownOperator),
            };
        Ok(Constraint {
            field: field.clone(),
            operator,
        })
    }
}
