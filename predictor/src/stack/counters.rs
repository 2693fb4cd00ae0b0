//! Per-tier counters, shared by the FUSE server's threads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::TierKind;

/// Counters of one tier. Relaxed atomics: each is an independent tally read for reports, never
/// used to order other memory.
#[derive(Debug, Default)]
pub(crate) struct TierCounters {
    answered: AtomicU64,
    declined: AtomicU64,
    missed: AtomicU64,
}

/// A snapshot of one tier's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierStats {
    /// Queries this tier answered.
    pub answered: u64,
    /// Queries it could not try: no usable model for the file (untrained, stale, invalid).
    pub declined: u64,
    /// Queries it tried but whose candidate failed verification; the next tier answered.
    pub missed: u64,
}

/// A snapshot of a stack's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStats {
    /// Per tier, in [`TierKind::ALL`] order.
    pub tiers: [(TierKind, TierStats); TierKind::ALL.len()],
    /// Learned and front-tier answers re-computed by the in-memory structure in audit mode.
    pub audit_checked: u64,
    /// Of those, how many differed (must be 0; the B-tree's answer was returned).
    pub audit_mismatches: u64,
}

impl StackStats {
    /// The counters of one tier.
    pub fn tier(&self, kind: TierKind) -> TierStats {
        self.tiers[kind as usize].1
    }
}

/// All counters of a stack.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    tiers: [TierCounters; TierKind::ALL.len()],
    audit_checked: AtomicU64,
    audit_mismatches: AtomicU64,
}

impl Counters {
    pub(crate) fn answered(&self, t: TierKind) {
        self.tiers[t as usize].answered.fetch_add(1, Relaxed);
    }
    pub(crate) fn declined(&self, t: TierKind) {
        self.tiers[t as usize].declined.fetch_add(1, Relaxed);
    }
    pub(crate) fn missed(&self, t: TierKind) {
        self.tiers[t as usize].missed.fetch_add(1, Relaxed);
    }
    pub(crate) fn audited(&self, mismatch: bool) {
        self.audit_checked.fetch_add(1, Relaxed);
        if mismatch {
            self.audit_mismatches.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> StackStats {
        let tiers = TierKind::ALL.map(|t| {
            let c = &self.tiers[t as usize];
            (
                t,
                TierStats {
                    answered: c.answered.load(Relaxed),
                    declined: c.declined.load(Relaxed),
                    missed: c.missed.load(Relaxed),
                },
            )
        });
        StackStats {
            tiers,
            audit_checked: self.audit_checked.load(Relaxed),
            audit_mismatches: self.audit_mismatches.load(Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        for c in &self.tiers {
            c.answered.store(0, Relaxed);
            c.declined.store(0, Relaxed);
            c.missed.store(0, Relaxed);
        }
        self.audit_checked.store(0, Relaxed);
        self.audit_mismatches.store(0, Relaxed);
    }
}
