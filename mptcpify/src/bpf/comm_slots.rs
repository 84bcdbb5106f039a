//! The exact name slots in front of COMMS ([`maps::COMM_SLOTS`]: the
//! protocol, a sequence lock, is described there), written through a
//! mapping of the map.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use aya::maps::MapData;
use mptcpify_common::maps::{self, comm_slot, CommSlot, COMM_SLOTS_LEN};

use crate::sys::mapped::Mapping;

/// What one slot says: the one name there and its roles, or `None`: ask
/// COMMS.
pub type Answer = Option<([u64; 2], u8)>;

/// What the slots should say for COMMS's entries `names`.
pub fn table<'a>(
    names: impl IntoIterator<Item = (&'a [u8; 16], u8)>,
) -> [Answer; COMM_SLOTS_LEN as usize] {
    // The program's loads are ordered (the sequence lock holds) on x86-64
    // only; elsewhere every slot asks COMMS.
    if cfg!(target_arch = "x86_64") {
        CommSlot::table(names)
    } else {
        [None; COMM_SLOTS_LEN as usize]
    }
}

pub struct CommSlots {
    mapping: Mapping,
    /// What each slot says now, as last written.
    now: Box<[Answer; COMM_SLOTS_LEN as usize]>,
    _map: MapData,
}

impl CommSlots {
    /// The map's slots, all asking COMMS (as the kernel created them).
    pub fn new(map: MapData) -> anyhow::Result<Self> {
        let len = std::mem::size_of::<CommSlot>() * COMM_SLOTS_LEN as usize;
        Ok(Self {
            mapping: Mapping::new(&map, len, maps::COMM_SLOTS)?,
            now: Box::new([None; COMM_SLOTS_LEN as usize]),
            _map: map,
        })
    }

    /// Before a reload's first step: every slot that will change asks
    /// COMMS, which the plan keeps right at every step.
    pub fn unsettle(&mut self, next: &[Answer; COMM_SLOTS_LEN as usize]) {
        for (index, next) in next.iter().enumerate() {
            if self.now[index] != *next && self.now[index].is_some() {
                self.write(index, None);
            }
        }
    }

    /// After the last step (and at the first load): every slot says `next`.
    pub fn settle(&mut self, next: &[Answer; COMM_SLOTS_LEN as usize]) {
        for (index, next) in next.iter().enumerate() {
            if self.now[index] != *next {
                self.write(index, *next);
            }
        }
    }

    fn write(&mut self, index: usize, answer: Answer) {
        // SAFETY: index < COMM_SLOTS_LEN slots, inside the mapping, which
        // lives as long as self; aligned u64s.
        let slot = unsafe { self.mapping.base.cast::<CommSlot>().add(index) };
        let (meta, name) = unsafe {
            (
                AtomicU64::from_ptr(&raw mut (*slot).meta),
                [
                    AtomicU64::from_ptr(&raw mut (*slot).name[0]),
                    AtomicU64::from_ptr(&raw mut (*slot).name[1]),
                ],
            )
        };
        write_slot(meta, name, answer);
        self.now[index] = answer;
    }
}

/// One store of a slot write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Store {
    Meta(u64),
    Name(usize, u64),
}

/// The writer's side of the sequence lock, for a slot whose `meta` is
/// `meta`: `meta` asks COMMS under the next generation before the name
/// changes, and only then, for an exact answer, says so under the
/// generation after.
fn stores(meta: u64, answer: Answer) -> Vec<Store> {
    let one = 1u64 << comm_slot::GENERATION_SHIFT;
    let generation = meta & !(one - 1);
    let mut stores = vec![Store::Meta(generation + one)];
    if let Some((words, roles)) = answer {
        stores.push(Store::Name(0, words[0]));
        stores.push(Store::Name(1, words[1]));
        stores.push(Store::Meta(
            (generation + 2 * one) | comm_slot::EXACT | u64::from(roles),
        ));
    }
    stores
}

fn write_slot(meta: &AtomicU64, name: [&AtomicU64; 2], answer: Answer) {
    let stores = stores(meta.load(Ordering::Relaxed), answer);
    let last = stores.len() - 1;
    for (i, store) in stores.into_iter().enumerate() {
        match store {
            // The last store publishes the name: Release.
            Store::Meta(value) if i == last && i > 0 => meta.store(value, Ordering::Release),
            Store::Meta(value) => {
                meta.store(value, Ordering::Relaxed);
                // The name's stores may not pass the first store.
                fence(Ordering::Release);
            }
            Store::Name(word, value) => name[word].store(value, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maps::{CommKey, NameFilter};

    fn words(name: &[u8]) -> [u64; 2] {
        NameFilter::words(&CommKey::from_name(name).0 .0)
    }

    /// A reader reads `meta`, the name's two words and `meta` again, each
    /// at any moment between the writer's stores (in that order): for every
    /// such read of a write from one name to another, and of one that
    /// empties the slot, the answer asks COMMS or is the old or the new
    /// slot's, never a mix.
    #[test]
    fn a_slot_read_during_a_write_is_old_new_or_asks() {
        let (old, new) = (words(b"iperf3"), words(b"nginx-worker-12"));
        let start = {
            let meta = AtomicU64::new(0);
            let name = [AtomicU64::new(0), AtomicU64::new(0)];
            write_slot(&meta, [&name[0], &name[1]], Some((old, 1)));
            (meta.into_inner(), name.map(AtomicU64::into_inner))
        };
        for (next, next_roles) in [(Some((new, 2u8)), 2u8), (None, 0)] {
            let mut states = vec![start];
            for store in stores(start.0, next) {
                let mut state = *states.last().unwrap();
                match store {
                    Store::Meta(value) => state.0 = value,
                    Store::Name(word, value) => state.1[word] = value,
                }
                states.push(state);
            }
            let n = states.len();
            for a in 0..n {
                for b in a..n {
                    for c in b..n {
                        for d in c..n {
                            let name = [states[b].1[0], states[c].1[1]];
                            for asked in [old, new, words(b"other")] {
                                let seen = CommSlot::answer(states[a].0, name, states[d].0, asked);
                                let was = u8::from(asked == old);
                                let will = if asked == new { next_roles } else { 0 };
                                assert!(
                                    seen.is_none()
                                        || seen == Some(was)
                                        || (next.is_some() && seen == Some(will)),
                                    "reads at {a} {b} {c} {d}: {seen:?} for {asked:?}"
                                );
                            }
                        }
                    }
                }
            }
            let end = states[n - 1];
            assert_eq!(
                CommSlot::answer(end.0, end.1, end.0, new),
                next.map(|(_, roles)| roles)
            );
        }
    }
}
