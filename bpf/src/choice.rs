//! The `--tier` values of the commands that can run the BPF program: every stack of
//! [`Tier::VOCABULARY`], and the two stacks with the program in front, which `predictor` does
//! not know (to it the program is just a [`predictor::FrontTier`]).

use predictor::Tier;

/// A stack of tiers, with or without the BPF program in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierChoice {
    /// The userspace stack (what the program is loaded from, when it runs).
    pub stack: Tier,
    /// Whether the BPF program answers first.
    pub in_kernel: bool,
}

/// The stacks with the program in front: name and help, once. Both load the stack's learned
/// index (`bpf`: the learned tier's, records storage; `bpf-compact`: the compact tier's, packed
/// storage) into the same maps through the same code.
const IN_KERNEL: [(Tier, &str, &str); 2] = [
    (
        Tier::Learned,
        "bpf",
        "the learned index (records storage, 16 bytes an extent) evaluated in the kernel by the BPF program first \
         (needs CAP_BPF), then the learned tier's userspace stack; without CAP_BPF that stack \
         answers alone",
    ),
    (
        Tier::Compact,
        "bpf-compact",
        "the learned index (packed blocks) evaluated in the kernel by the BPF program first \
         (needs CAP_BPF), then the compact tier's userspace stack; without CAP_BPF that stack \
         answers alone",
    ),
];

impl TierChoice {
    /// The learned stack with the program in front (`bpf`).
    pub const BPF: Self = Self {
        stack: Tier::Learned,
        in_kernel: true,
    };
    /// The compact stack with the program in front (`bpf-compact`).
    pub const BPF_COMPACT: Self = Self {
        stack: Tier::Compact,
        in_kernel: true,
    };

    /// Every choice: the stacks alone, then those with the program in front.
    pub fn all() -> impl Iterator<Item = Self> {
        let alone = Tier::ALL.into_iter().map(Self::from);
        alone.chain(IN_KERNEL.iter().map(|&(stack, _, _)| Self {
            stack,
            in_kernel: true,
        }))
    }

    fn in_kernel_entry(self) -> Option<&'static (Tier, &'static str, &'static str)> {
        IN_KERNEL
            .iter()
            .find(|(t, _, _)| self.in_kernel && *t == self.stack)
    }

    /// Its name: the `--tier` value, in stats and logs.
    pub fn name(self) -> &'static str {
        self.in_kernel_entry()
            .map_or_else(|| self.stack.name(), |e| e.1)
    }

    /// One line on what it runs (the `--tier` help).
    pub fn help(self) -> &'static str {
        self.in_kernel_entry()
            .map_or_else(|| self.stack.help(), |e| e.2)
    }

    /// The choice named `name` (or one of [`Tier::ALIASES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        IN_KERNEL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|&(stack, _, _)| Self {
                stack,
                in_kernel: true,
            })
            .or_else(|| Tier::from_name(name).map(Self::from))
    }
}

impl From<Tier> for TierChoice {
    fn from(stack: Tier) -> Self {
        Self {
            stack,
            in_kernel: false,
        }
    }
}

impl std::fmt::Display for TierChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TierChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::all().map(Self::name).collect();
            format!("unknown tier {s:?} (one of {})", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_has_one_name() {
        let all: Vec<TierChoice> = TierChoice::all().collect();
        assert_eq!(all.len(), Tier::ALL.len() + IN_KERNEL.len());
        for c in &all {
            assert_eq!(c.name().parse::<TierChoice>(), Ok(*c), "{c}");
            assert!(!c.help().is_empty());
        }
        let mut names: Vec<&str> = all.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "names are unique");
        assert_eq!("bpf".parse(), Ok(TierChoice::BPF));
        assert_eq!("bpf-compact".parse(), Ok(TierChoice::BPF_COMPACT));
        assert_eq!("predictor".parse(), Ok(TierChoice::from(Tier::Learned)));
        assert!("nope".parse::<TierChoice>().is_err());
    }
}
