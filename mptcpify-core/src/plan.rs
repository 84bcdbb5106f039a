//! What the policy maps hold for a policy ([`Contents`]), and the order of
//! writes that takes them from one policy to the next ([`plan`]) while the
//! program runs: at start (from nothing) and on reload (SIGHUP).
//!
//! The program reads the maps entry by entry, so a reload is seen half-done.
//! The plan keeps every half-done state between the two policies: a process
//! that both policies upgrade is upgraded all along, one that neither
//! upgrades never is. It goes through four states, each step of a kind only
//! adding or only removing:
//!
//! 1. add the new policy's exclusions (entries, then their kinds in CONFIG);
//! 2. add its inclusions: now both policies' inclusions and exclusions hold;
//! 3. remove the old inclusions (kinds in CONFIG first, then entries);
//! 4. remove the old exclusions;
//!
//! then the cgroup rules are compacted (each moves only to a lower slot,
//! after the rule that was there moved or was removed) and the rule count
//! cut. Adding exclusions, or removing inclusions, only keeps more sockets
//! TCP; the inclusions added in 2 are cancelled by the exclusions of 1.
//!
//! The name filters (`NAME_FILTER`, supersets of COMMS and EXPLAIN that
//! spare the program the lookup of a name neither holds) hold both
//! policies' names before the first entry is written, and only the new
//! policy's after the last is removed.

use std::collections::BTreeMap;

use mptcpify_common::maps::{
    name_filter, role, CgroupRule, KindBits, NameFilter, PidRule, MAX_CGROUP_RULES,
};

/// A reload [`plan`] cannot make: the old and the new cgroup rules do not
/// fit in CGROUPS at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyCgroupRules {
    /// Rules the transition needs at once.
    pub needed: usize,
}

impl std::fmt::Display for TooManyCgroupRules {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "moving to the new policy needs {} cgroup rules at once (the old and the new \
             ones); mptcpify holds at most {MAX_CGROUP_RULES}",
            self.needed
        )
    }
}

/// The policy part of the maps and of CONFIG.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub comms: BTreeMap<[u8; 16], u8>,
    pub pids: BTreeMap<u32, (u64, u8)>,
    pub netns: BTreeMap<u64, u8>,
    /// Rules in slot order, with the path the follower knows them by.
    pub cgroups: Vec<(CgroupRule, String)>,
    pub explain: BTreeMap<[u8; 16], u8>,
    /// CONFIG's kinds: include 0 means every process (`--all`).
    pub include_kinds: u32,
    pub exclude_kinds: u32,
}

/// One write, in the order [`plan`] gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Set (or, `None`, delete) an entry of COMMS, PIDS, NETNS or EXPLAIN.
    Comm([u8; 16], Option<u8>),
    Pid(u32, Option<(u64, u8)>),
    Netns(u64, Option<u8>),
    Explain([u8; 16], Option<u8>),
    /// Write CGROUPS slot `index` and point its path at it.
    Cgroup(u32, CgroupRule, String),
    /// Forget a path that no rule has any more.
    CgroupPathGone(String),
    /// Write NAME_FILTER slot `index` (a [`name_filter`] index).
    NameFilter(u32, NameFilter),
    /// CONFIG's policy fields.
    Config {
        include_kinds: u32,
        exclude_kinds: u32,
        cgroup_rules: u32,
        explain: bool,
    },
}

impl Contents {
    /// Adds an entry's `roles` for a selector of `kind` to CONFIG's kinds.
    pub fn add_kind(&mut self, kind: u32, roles: u8) {
        let mut bits = KindBits {
            include: self.include_kinds,
            exclude: self.exclude_kinds,
        };
        bits.add(kind, roles);
        (self.include_kinds, self.exclude_kinds) = (bits.include, bits.exclude);
    }

    /// COMMS's entries: a name and its roles.
    pub fn comm_entries(&self) -> impl Iterator<Item = (&[u8; 16], u8)> {
        self.comms.iter().map(|(name, roles)| (name, *roles))
    }

    /// The NAME_FILTER slots of these contents: each name map's filter.
    pub fn name_filters(&self) -> [(u32, NameFilter); 2] {
        [
            (name_filter::COMMS, NameFilter::of(self.comms.keys())),
            (name_filter::EXPLAIN, NameFilter::of(self.explain.keys())),
        ]
    }

    fn config_step(&self, cgroup_rules: usize) -> Step {
        Step::Config {
            include_kinds: self.include_kinds,
            exclude_kinds: self.exclude_kinds,
            cgroup_rules: cgroup_rules as u32,
            explain: !self.explain.is_empty(),
        }
    }
}

/// Keeps only the roles in `keep` of each entry (an entry left with none is
/// removed); an inclusion keeps its selector number.
fn with_roles<K: Ord + Clone>(map: &BTreeMap<K, u8>, keep: u8) -> BTreeMap<K, u8> {
    map.iter()
        .filter(|(_, r)| *r & keep != 0)
        .map(|(k, r)| (k.clone(), r & role::kept_with(keep)))
        .collect()
}

/// Entry-wise union of the roles.
fn union<K: Ord + Clone>(a: &BTreeMap<K, u8>, b: &BTreeMap<K, u8>) -> BTreeMap<K, u8> {
    let mut out = a.clone();
    for (k, r) in b {
        *out.entry(k.clone()).or_default() |= r;
    }
    out
}

/// The steps that take the maps from `from` to `to` (both hash maps of one
/// kind), in key order: changed and new entries, then removed ones.
fn map_steps<K: Ord + Clone>(
    from: &BTreeMap<K, u8>,
    to: &BTreeMap<K, u8>,
    step: impl Fn(K, Option<u8>) -> Step,
) -> Vec<Step> {
    let mut steps: Vec<Step> = to
        .iter()
        .filter(|(k, r)| from.get(*k) != Some(*r))
        .map(|(k, r)| step(k.clone(), Some(*r)))
        .collect();
    steps.extend(
        from.keys()
            .filter(|k| !to.contains_key(*k))
            .map(|k| step(k.clone(), None)),
    );
    steps
}

/// The include kinds of the union of two policies: every process when
/// either selects every process.
fn union_include_kinds(a: u32, b: u32) -> u32 {
    if a == 0 || b == 0 {
        0
    } else {
        a | b
    }
}

/// One state of the transition: each map with the roles it holds then.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    comms: BTreeMap<[u8; 16], u8>,
    pids: BTreeMap<u32, u8>,
    netns: BTreeMap<u64, u8>,
    /// Cgroup rule roles by slot.
    cgroups: Vec<u8>,
    include_kinds: u32,
    exclude_kinds: u32,
}

/// The writes that take the maps from `old` to `new` (see the module's
/// comment), and what the maps then hold: `new`, its cgroup rules in the
/// order of their slots. In phases: the cgroup slots of the transition,
/// its four states, the steps through them, the compaction of the rules;
/// EXPLAIN swapped; all between the name filters' writes.
pub fn plan(old: &Contents, new: &Contents) -> Result<(Vec<Step>, Contents), TooManyCgroupRules> {
    let slots = Slots::of(old, new)?;
    let states = states(old, new, &slots);
    let (mut steps, last) = through(old, new, &slots, &states);
    let done = compact(new, &slots, &last, &mut steps);
    // EXPLAIN is not part of the decision: a plain swap.
    steps.extend(map_steps(&old.explain, &new.explain, Step::Explain));
    Ok((with_name_filters(old, new, steps), done))
}

/// The cgroup slots during the transition: the old rules where they are,
/// then the new rules the old ones lack.
struct Slots {
    rules: Vec<(CgroupRule, String)>,
    /// The slot of each new rule.
    of_new: Vec<usize>,
    /// Each slot's roles in the old policy and in the new one.
    old_roles: Vec<u8>,
    new_roles: Vec<u8>,
}

impl Slots {
    fn of(old: &Contents, new: &Contents) -> Result<Slots, TooManyCgroupRules> {
        let mut rules: Vec<(CgroupRule, String)> = old.cgroups.clone();
        let mut of_new = Vec::new();
        for (rule, path) in &new.cgroups {
            match rules
                .iter()
                .position(|(r, p)| p == path && r.level == rule.level)
            {
                Some(at) => of_new.push(at),
                None => {
                    of_new.push(rules.len());
                    rules.push((*rule, path.clone()));
                }
            }
        }
        if rules.len() > MAX_CGROUP_RULES as usize {
            return Err(TooManyCgroupRules {
                needed: rules.len(),
            });
        }
        let old_roles = (0..rules.len())
            .map(|i| old.cgroups.get(i).map_or(0, |(r, _)| r.role as u8))
            .collect();
        let mut new_roles = vec![0u8; rules.len()];
        for ((rule, _), &at) in new.cgroups.iter().zip(&of_new) {
            new_roles[at] |= rule.role as u8;
        }
        Ok(Slots {
            rules,
            of_new,
            old_roles,
            new_roles,
        })
    }

    /// Each slot's roles: the old policy's `incl[0]` and `excl[0]` roles
    /// and the new one's `incl[1]` and `excl[1]`.
    fn mix(&self, incl: [u8; 2], excl: [u8; 2]) -> Vec<u8> {
        (0..self.rules.len())
            .map(|i| {
                let (old, new) = (self.old_roles[i], self.new_roles[i]);
                let kept = role::kept_with;
                (old & kept(incl[0]) | new & kept(incl[1]))
                    | (old & kept(excl[0]) | new & kept(excl[1]))
            })
            .collect()
    }
}

impl State {
    /// The maps holding `incl`'s inclusions (with `incl_kinds`), the
    /// exclusions of both `excl`, and the cgroup roles `cgroups`.
    fn of(incl: &Contents, incl_kinds: u32, excl: [&Contents; 2], cgroups: Vec<u8>) -> State {
        State {
            comms: union(
                &with_roles(&incl.comms, role::INCLUDE),
                &excluded(excl, |c| c.comms.clone()),
            ),
            pids: union(
                &with_roles(&pid_roles(incl), role::INCLUDE),
                &excluded(excl, pid_roles),
            ),
            netns: union(
                &with_roles(&incl.netns, role::INCLUDE | role::MPTCP_CHECKED),
                &excluded(excl, |c| c.netns.clone()),
            ),
            cgroups,
            include_kinds: incl_kinds,
            exclude_kinds: excl[0].exclude_kinds | excl[1].exclude_kinds,
        }
    }
}

/// The roles of each pid rule.
fn pid_roles(c: &Contents) -> BTreeMap<u32, u8> {
    c.pids.iter().map(|(k, (_, r))| (*k, *r)).collect()
}

/// The exclusions of both `excl` in one map (`of` picks the map).
fn excluded<K: Ord + Clone>(
    excl: [&Contents; 2],
    of: impl Fn(&Contents) -> BTreeMap<K, u8>,
) -> BTreeMap<K, u8> {
    union(
        &with_roles(&of(excl[0]), role::EXCLUDE),
        &with_roles(&of(excl[1]), role::EXCLUDE),
    )
}

/// The four states after the old one (see the module's comment); the
/// inclusions of the state with both policies' inclusions are those of the
/// union.
fn states(old: &Contents, new: &Contents, slots: &Slots) -> [State; 4] {
    let (i, e, none) = (role::INCLUDE, role::EXCLUDE, 0);
    let union_contents = Contents {
        comms: union(&old.comms, &new.comms),
        pids: old
            .pids
            .iter()
            .chain(&new.pids)
            .map(|(k, v)| (*k, *v))
            .collect(),
        netns: union(&old.netns, &new.netns),
        ..Contents::default()
    };
    let both = union_include_kinds(old.include_kinds, new.include_kinds);
    [
        State::of(
            old,
            old.include_kinds,
            [old, new],
            slots.mix([i, none], [e, e]),
        ),
        State::of(&union_contents, both, [old, new], slots.mix([i, i], [e, e])),
        State::of(
            new,
            new.include_kinds,
            [old, new],
            slots.mix([none, i], [e, e]),
        ),
        State::of(
            new,
            new.include_kinds,
            [new, new],
            slots.mix([none, i], [none, e]),
        ),
    ]
}

/// The steps from the old state through `states`, and the last state. A
/// state that adds writes its entries before CONFIG (which then looks up
/// kinds that have them); one that removes, after.
fn through(
    old: &Contents,
    new: &Contents,
    slots: &Slots,
    states: &[State; 4],
) -> (Vec<Step>, State) {
    // Where a pid rule's start time comes from: the new policy's when it
    // has the pid (a pid reused since is another process), else the old's.
    let start_of = |tgid: u32| {
        new.pids
            .get(&tgid)
            .or_else(|| old.pids.get(&tgid))
            .map_or(0, |(start, _)| *start)
    };
    let mut steps = Vec::new();
    // Slots past the old rules hold whatever an earlier reload left there:
    // they are all written before the rule count covers them.
    let mut current = State::of(
        old,
        old.include_kinds,
        [old, old],
        slots.old_roles[..old.cgroups.len()].to_vec(),
    );
    let mut count = old.cgroups.len();
    for (n, next) in states.iter().enumerate() {
        let adding = n < 2;
        let entries = |steps: &mut Vec<Step>, current: &State| {
            steps.extend(map_steps(&current.comms, &next.comms, Step::Comm));
            steps.extend(map_steps(&current.pids, &next.pids, |k, r| {
                Step::Pid(k, r.map(|r| (start_of(k), r)))
            }));
            steps.extend(map_steps(&current.netns, &next.netns, Step::Netns));
            for (slot, roles) in next.cgroups.iter().enumerate() {
                if current.cgroups.get(slot) != Some(roles) {
                    let (rule, path) = &slots.rules[slot];
                    let rule = CgroupRule {
                        role: u32::from(*roles),
                        ..*rule
                    };
                    steps.push(Step::Cgroup(slot as u32, rule, path.clone()));
                }
            }
        };
        let config = |count: usize| Step::Config {
            include_kinds: next.include_kinds,
            exclude_kinds: next.exclude_kinds,
            cgroup_rules: count as u32,
            explain: !old.explain.is_empty() || !new.explain.is_empty(),
        };
        if adding {
            entries(&mut steps, &current);
            count = count.max(next.cgroups.len());
            steps.push(config(count));
        } else {
            steps.push(config(count));
            entries(&mut steps, &current);
        }
        current = next.clone();
    }
    (steps, current)
}

/// The compaction, after the last state: the new rules, in the order of
/// their slots, into the first slots; each moves down only, onto a slot
/// whose rule is gone or already moved. Then the rule count is cut and the
/// paths no rule has are forgotten. What the maps then hold.
fn compact(new: &Contents, slots: &Slots, last: &State, steps: &mut Vec<Step>) -> Contents {
    let mut live: Vec<(usize, CgroupRule, String)> = slots
        .of_new
        .iter()
        .zip(&new.cgroups)
        .map(|(&from, (rule, path))| (from, *rule, path.clone()))
        .collect();
    live.sort_by_key(|(from, _, _)| *from);
    for (to, (from, rule, path)) in live.iter().enumerate() {
        if to != *from || last.cgroups.get(to) != Some(&(rule.role as u8)) {
            steps.push(Step::Cgroup(to as u32, *rule, path.clone()));
        }
    }
    let mut done = new.clone();
    done.cgroups = live
        .into_iter()
        .map(|(_, rule, path)| (rule, path))
        .collect();
    steps.push(done.config_step(done.cgroups.len()));
    for (_, path) in &slots.rules {
        if !new.cgroups.iter().any(|(_, p)| p == path) {
            steps.push(Step::CgroupPathGone(path.clone()));
        }
    }
    done
}

/// `steps` between the name filters' writes: first both policies' names,
/// last the new policy's alone (each written only where it changes).
fn with_name_filters(old: &Contents, new: &Contents, steps: Vec<Step>) -> Vec<Step> {
    let mut first = Vec::new();
    let mut last = Vec::new();
    for ((index, before), (_, after)) in old.name_filters().into_iter().zip(new.name_filters()) {
        let both = before.union(after);
        if both != before {
            first.push(Step::NameFilter(index, both));
        }
        if after != both {
            last.push(Step::NameFilter(index, after));
        }
    }
    first.into_iter().chain(steps).chain(last).collect()
}

/// The pid rule of a [`Step::Pid`].
pub fn pid_rule((start_ticks, roles): (u64, u8)) -> PidRule {
    PidRule {
        start_ticks,
        roles: u32::from(roles),
        _pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcpify_common::maps::kind;

    /// A task as the program sees it.
    #[derive(Clone, Debug)]
    struct Task {
        comm: [u8; 16],
        tgid: u32,
        netns: u64,
        /// (level, id) of its cgroup's ancestors, itself included.
        cgroups: Vec<(u32, u64)>,
    }

    /// The maps as the program would read them, mid-transition.
    #[derive(Clone, Debug, Default)]
    struct Maps {
        comms: BTreeMap<[u8; 16], u8>,
        pids: BTreeMap<u32, u8>,
        netns: BTreeMap<u64, u8>,
        cgroups: Vec<CgroupRule>,
        include_kinds: u32,
        exclude_kinds: u32,
        cgroup_rules: u32,
        comm_filter: NameFilter,
    }

    impl Maps {
        fn apply(&mut self, step: &Step) {
            match step {
                Step::Comm(k, r) => set(&mut self.comms, *k, *r),
                Step::Pid(k, r) => set(&mut self.pids, *k, r.map(|(_, r)| r)),
                Step::Netns(k, r) => set(&mut self.netns, *k, *r),
                Step::Explain(..) | Step::CgroupPathGone(_) => {}
                Step::NameFilter(index, filter) => {
                    if *index == name_filter::COMMS {
                        self.comm_filter = *filter;
                    }
                }
                Step::Cgroup(i, rule, _) => {
                    let i = *i as usize;
                    if self.cgroups.len() <= i {
                        self.cgroups.resize(i + 1, CgroupRule::default());
                    }
                    self.cgroups[i] = *rule;
                }
                Step::Config {
                    include_kinds,
                    exclude_kinds,
                    cgroup_rules,
                    ..
                } => {
                    self.include_kinds = *include_kinds;
                    self.exclude_kinds = *exclude_kinds;
                    self.cgroup_rules = *cgroup_rules;
                }
            }
        }

        /// mptcpify-ebpf/src/task.rs's selection, on these maps.
        fn upgrades(&self, task: &Task) -> bool {
            let wanted = self.include_kinds | self.exclude_kinds;
            let (mut incl, mut excl) = (0u32, false);
            let mut add = |kind: u32, roles: u8| {
                if roles & role::INCLUDE != 0 {
                    incl |= kind;
                }
                excl |= roles & role::EXCLUDE != 0;
            };
            if wanted & kind::NETNS != 0 {
                add(kind::NETNS, *self.netns.get(&task.netns).unwrap_or(&0));
            }
            // The program looks a name up only where the filter may hold it.
            if wanted & kind::COMM != 0 && self.comm_filter.may_hold(&task.comm) {
                add(kind::COMM, *self.comms.get(&task.comm).unwrap_or(&0));
            }
            if wanted & kind::PID != 0 {
                add(kind::PID, *self.pids.get(&task.tgid).unwrap_or(&0));
            }
            if wanted & kind::CGROUP != 0 {
                for rule in self.cgroups.iter().take(self.cgroup_rules as usize) {
                    if task.cgroups.contains(&(rule.level, rule.id)) {
                        add(kind::CGROUP, rule.role as u8);
                    }
                }
            }
            (self.include_kinds == 0 || incl & self.include_kinds != 0) && !excl
        }
    }

    fn set<K: Ord>(map: &mut BTreeMap<K, u8>, k: K, r: Option<u8>) {
        match r {
            Some(r) => {
                map.insert(k, r);
            }
            None => {
                map.remove(&k);
            }
        }
    }

    fn name(s: &str) -> [u8; 16] {
        mptcpify_common::maps::CommKey::from_name(s.as_bytes()).0 .0
    }

    fn rule(level: u32, id: u64, roles: u8) -> (CgroupRule, String) {
        let rule = CgroupRule {
            id,
            level,
            role: u32::from(roles),
        };
        (rule, format!("/cg{id}"))
    }

    /// The selector number every policy of the test gives an entry: by
    /// what it names, as `crate::selector_numbers` keeps them across
    /// reloads.
    fn number(kind: u32, key: u64) -> u32 {
        (kind * 7 + key as u32) % 31 + 1
    }

    /// `roles`, with the entry's number when it includes.
    fn numbered(roles: u8, kind: u32, key: u64) -> u8 {
        if roles & role::INCLUDE != 0 {
            role::with_selector(roles, number(kind, key))
        } else {
            roles
        }
    }

    /// Every include entry the maps hold has its own number, at every step
    /// (a union of two numbers would count under a third selector), and
    /// an exclusion alone has none.
    fn check_numbers(maps: &Maps, at: &str) {
        let check = |roles: u8, kind: u32, key: u64| {
            let want = if roles & role::INCLUDE != 0 {
                number(kind, key)
            } else {
                0
            };
            assert_eq!(role::selector(roles), want, "{at}: kind {kind} key {key}");
        };
        for (name, roles) in &maps.comms {
            check(*roles, kind::COMM, u64::from(name[0]));
        }
        for (tgid, roles) in &maps.pids {
            check(*roles, kind::PID, u64::from(*tgid));
        }
        for (netns, roles) in &maps.netns {
            check(*roles, kind::NETNS, *netns);
        }
        for rule in maps.cgroups.iter().take(maps.cgroup_rules as usize) {
            check(rule.role as u8, kind::CGROUP, rule.id);
        }
    }

    /// A policy by hand: comms, pids, netns, cgroups (each with roles).
    fn policy(
        comms: &[(&str, u8)],
        pids: &[(u32, u8)],
        netns: &[(u64, u8)],
        cgroups: &[(u32, u64, u8)],
    ) -> Contents {
        let mut c = Contents::default();
        let kinds = |kind: u32, roles: u8, c: &mut Contents| c.add_kind(kind, roles);
        for (n, r) in comms {
            let r = numbered(*r, kind::COMM, u64::from(name(n)[0]));
            c.comms.insert(name(n), r);
            kinds(kind::COMM, r, &mut c);
        }
        for (p, r) in pids {
            let r = numbered(*r, kind::PID, u64::from(*p));
            c.pids.insert(*p, (7, r));
            kinds(kind::PID, r, &mut c);
        }
        for (n, r) in netns {
            let r = numbered(*r, kind::NETNS, *n);
            c.netns.insert(*n, r);
            kinds(kind::NETNS, r, &mut c);
        }
        for (level, id, r) in cgroups {
            let r = numbered(*r, kind::CGROUP, *id);
            c.cgroups.push(rule(*level, *id, r));
            kinds(kind::CGROUP, r, &mut c);
        }
        c
    }

    /// The maps holding `contents`, with stale rules past its cgroup rules
    /// (as an earlier reload's compaction leaves them) that would select
    /// and exclude tasks if they were ever counted.
    fn load(contents: &Contents) -> Maps {
        let mut maps = Maps::default();
        let (steps, _) = plan(&Contents::default(), contents).unwrap();
        for step in &steps {
            maps.apply(step);
        }
        let n = maps.cgroup_rules as usize;
        maps.cgroups.resize(n, CgroupRule::default());
        for k in n..MAX_CGROUP_RULES as usize {
            let stale = [rule(1, 99, role::INCLUDE), rule(0, 1, role::EXCLUDE)][k % 2].0;
            maps.cgroups.push(stale);
        }
        maps
    }

    fn tasks() -> Vec<Task> {
        let mut tasks = Vec::new();
        for comm in ["a", "b", "s", "x"] {
            for tgid in [100, 200] {
                for netns in [1, 2] {
                    for cgroups in [
                        vec![(0, 1)],
                        vec![(0, 1), (1, 10)],
                        vec![(0, 1), (1, 10), (2, 20)],
                        vec![(0, 1), (1, 99)],
                    ] {
                        tasks.push(Task {
                            comm: name(comm),
                            tgid,
                            netns,
                            cgroups,
                        });
                    }
                }
            }
        }
        tasks
    }

    /// Every pair of these policies: after every single write, a task
    /// both upgrade is upgraded, a task neither upgrades is not, and at the
    /// end the maps say what the new policy says.
    #[test]
    fn no_half_done_reload_changes_what_both_policies_agree_on() {
        let (i, e) = (role::INCLUDE, role::EXCLUDE);
        let policies = [
            policy(&[("s", e)], &[], &[], &[]),
            policy(&[("a", i), ("b", i)], &[], &[], &[]),
            policy(&[], &[], &[], &[(1, 10, i), (2, 20, e)]),
            policy(&[("a", e)], &[], &[], &[(1, 10, i)]),
            policy(&[], &[], &[], &[(2, 20, i), (1, 10, i)]),
            policy(&[], &[], &[], &[(1, 99, i), (2, 20, i), (1, 10, e)]),
            policy(&[("b", i)], &[(100, i)], &[(2, i)], &[]),
            policy(
                &[("a", i | e), ("x", i)],
                &[(200, i)],
                &[(1, e)],
                &[(1, 10, i)],
            ),
            policy(&[("x", e)], &[], &[(2, i)], &[(1, 10, e), (1, 99, i)]),
        ];
        let tasks = tasks();
        for (n, old) in policies.iter().enumerate() {
            for (m, new) in policies.iter().enumerate() {
                let mut maps = load(old);
                let want_old: Vec<bool> = tasks.iter().map(|t| maps.upgrades(t)).collect();
                let want_new: Vec<bool> = tasks.iter().map(|t| load(new).upgrades(t)).collect();
                let (steps, done) = plan(old, new).unwrap();
                for (k, step) in steps.iter().enumerate() {
                    maps.apply(step);
                    check_numbers(&maps, &format!("{n} -> {m}, after step {k}"));
                    for comm in maps.comms.keys() {
                        assert!(
                            maps.comm_filter.may_hold(comm),
                            "{n} -> {m}, after step {k}: the filter lacks {comm:?}"
                        );
                    }
                    for (t, task) in tasks.iter().enumerate() {
                        let now = maps.upgrades(task);
                        if want_old[t] == want_new[t] {
                            assert_eq!(
                                now, want_old[t],
                                "policy {n} -> {m}, after step {k} ({step:?}): {task:?}"
                            );
                        }
                    }
                }
                for (t, task) in tasks.iter().enumerate() {
                    assert_eq!(maps.upgrades(task), want_new[t], "{n} -> {m}: {task:?}");
                }
                assert_eq!(maps.cgroup_rules as usize, new.cgroups.len());
                assert_eq!(maps.comms, new.comms, "{n} -> {m}");
                assert_eq!(maps.pids, pid_roles(new), "{n} -> {m}");
                assert_eq!(maps.netns, new.netns, "{n} -> {m}");
                let mut a = done.cgroups.clone();
                let mut b = new.cgroups.clone();
                a.sort_by_key(|(_, p)| p.clone());
                b.sort_by_key(|(_, p)| p.clone());
                assert_eq!(a, b, "{n} -> {m}");
            }
        }
    }

    #[test]
    fn too_many_cgroup_rules_at_once_is_refused() {
        let many = |base: u64| Contents {
            cgroups: (0..20).map(|k| rule(1, base + k, role::INCLUDE)).collect(),
            include_kinds: kind::CGROUP,
            ..Contents::default()
        };
        let err = plan(&many(100), &many(200)).unwrap_err().to_string();
        assert!(err.contains("40 cgroup rules at once"), "{err}");
        assert!(plan(&many(100), &many(110)).is_ok(), "30 at once fit");
    }
}
