//! The numbers that tell the program which include selector upgraded a
//! socket ([`mptcpify_common::maps::role::SELECTOR`]), so that what the
//! sockets of each selector do is counted apart (`status`, `/metrics`).
//!
//! A number stays with what its selector names for the life of the
//! instance: a reload that keeps a selector keeps its number and its
//! counts, and the reload plan relies on it (an entry both policies hold
//! has one number, so the union of their roles is still that number). A
//! new selector takes a number never used before while there is one, so
//! that the counts of a removed selector's sockets, which may still close,
//! are not told under another; only when every number was used is one
//! reused, its counts cleared.

use mptcpify_common::maps::MAX_SELECTORS;

/// An include selector: what it names (`identity`: its kind and key, the
/// same across reloads) and how the operator knows it (`name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub identity: String,
    pub name: String,
}

/// One number's selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Slot {
    identity: String,
    name: String,
    /// Its selector is no longer in the policy (its sockets may live on).
    removed: bool,
}

/// The numbers of an instance ([`Numbers::assign`] at start and at each
/// reload).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Numbers {
    /// Index `n - 1` for number `n`.
    slots: Vec<Slot>,
    /// How many selectors past the last number the operator was last told
    /// are counted together ([`Numbers::tell_together`]).
    told_together: usize,
}

/// What an assignment changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assigned {
    /// Each selector's number, in the order given (0: past the last
    /// number, counted with number 0).
    pub numbers: Vec<u32>,
    /// The numbers whose counts start again from 0 (reused).
    pub cleared: Vec<u32>,
}

/// Number 0's name: the sockets no selector of their own upgraded.
pub fn unnumbered(system_wide: bool) -> &'static str {
    if system_wide {
        "all processes"
    } else {
        "selectors past the 31st"
    }
}

impl Numbers {
    /// Whether `together` selectors counted together (past the last
    /// number) are worth telling: more than when last told. Pods come and
    /// go by the minute; the warning should not.
    pub fn tell_together(&mut self, together: usize) -> bool {
        let more = together > self.told_together;
        self.told_together = together;
        more
    }

    /// Numbers `selectors` (a policy's include selectors, in its order).
    pub fn assign(&mut self, selectors: &[Selector]) -> Assigned {
        let mut assigned = Assigned::default();
        for slot in &mut self.slots {
            slot.removed = !selectors.iter().any(|s| s.identity == slot.identity);
        }
        for selector in selectors {
            let number = match self
                .slots
                .iter()
                .position(|slot| slot.identity == selector.identity)
            {
                Some(at) => {
                    self.slots[at].name = selector.name.clone();
                    at as u32 + 1
                }
                None => self.take(selector, &mut assigned.cleared),
            };
            assigned.numbers.push(number);
        }
        assigned
    }

    /// A number for a new selector: a never-used one, else a removed
    /// selector's (cleared), else 0.
    fn take(&mut self, selector: &Selector, cleared: &mut Vec<u32>) -> u32 {
        let slot = Slot {
            identity: selector.identity.clone(),
            name: selector.name.clone(),
            removed: false,
        };
        if self.slots.len() + 1 < MAX_SELECTORS as usize {
            self.slots.push(slot);
            return self.slots.len() as u32;
        }
        match self.slots.iter().position(|s| s.removed) {
            Some(at) => {
                self.slots[at] = slot;
                cleared.push(at as u32 + 1);
                at as u32 + 1
            }
            None => 0,
        }
    }

    /// Every number's name, as `SELECTOR_NAMES` holds it (index = number;
    /// empty: unused), `system_wide` naming number 0.
    pub fn names(&self, system_wide: bool) -> Vec<String> {
        let mut names = vec![String::new(); MAX_SELECTORS as usize];
        names[0] = unnumbered(system_wide).into();
        for (at, slot) in self.slots.iter().enumerate() {
            names[at + 1] = if slot.removed {
                format!("{} (removed)", slot.name)
            } else {
                slot.name.clone()
            };
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_counted_together_are_told_when_there_are_more_of_them() {
        let mut numbers = Numbers::default();
        assert!(!numbers.tell_together(0));
        assert!(numbers.tell_together(2));
        assert!(!numbers.tell_together(2));
        assert!(!numbers.tell_together(1));
        assert!(numbers.tell_together(2));
    }

    fn sel(identity: &str) -> Selector {
        Selector {
            identity: identity.into(),
            name: format!("name of {identity}"),
        }
    }

    #[test]
    fn a_selector_keeps_its_number_across_reloads_and_new_ones_take_unused_numbers() {
        let mut numbers = Numbers::default();
        let first = numbers.assign(&[sel("comm a"), sel("unit b")]);
        assert_eq!(first.numbers, [1, 2]);
        assert!(first.cleared.is_empty());
        // "comm a" removed, "cgroup c" added: b keeps 2, c gets 3, not 1.
        let second = numbers.assign(&[sel("cgroup c"), sel("unit b")]);
        assert_eq!(second.numbers, [3, 2]);
        let names = numbers.names(false);
        assert_eq!(names[1], "name of comm a (removed)");
        assert_eq!(names[2], "name of unit b");
        assert_eq!(names[0], "selectors past the 31st");
        assert_eq!(names[4], "");
        // Back again: its old number and counts.
        assert_eq!(numbers.assign(&[sel("comm a")]).numbers, [1]);
        assert_eq!(Numbers::default().names(true)[0], "all processes");
    }

    #[test]
    fn past_the_last_number_removed_ones_are_reused_and_cleared_then_zero() {
        let mut numbers = Numbers::default();
        let many: Vec<Selector> = (0..40).map(|k| sel(&format!("comm {k}"))).collect();
        let all = numbers.assign(&many);
        assert_eq!(all.numbers[..31], (1..=31).collect::<Vec<u32>>()[..]);
        assert!(all.numbers[31..].iter().all(|&n| n == 0));
        // Keep 30 of the numbered, drop "comm 3" (number 4), add one.
        let mut next: Vec<Selector> = many[..31].to_vec();
        next.remove(3);
        next.push(sel("comm new"));
        let again = numbers.assign(&next);
        assert_eq!(*again.numbers.last().unwrap(), 4);
        assert_eq!(again.cleared, [4]);
        // Nothing removed: no number for one more.
        next.push(sel("comm newer"));
        assert_eq!(*numbers.assign(&next).numbers.last().unwrap(), 0);
    }
}
