//! A tier in front of the stack: another evaluator of the stack's own structures (the server
//! runs one in the kernel) that answers what it can before the stack looks. It only answers;
//! the stack counts its outcomes and audits its answers like its own, so nothing calls back
//! from a tier into the stack.

use crate::mapping::{Mapping, Query};

/// What a front tier did with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontAnswer {
    /// It answered with this mapping.
    Answered(Mapping),
    /// It could not try (a file it does not hold, a query it does not take, or it failed).
    Declined,
    /// It tried and could not verify its candidate.
    Missed,
}

/// Something that answers queries before the stack (see the module comment).
pub trait FrontTier: Send + Sync + std::fmt::Debug {
    /// One answer per query, in order. A tier that fails as a whole declines every query (and
    /// says why in its own log); an answer list shorter than `queries` declines the rest.
    fn answer(&self, queries: &[Query]) -> Vec<FrontAnswer>;
}
