//! The events the programs send: built from the calling task's own fields
//! and sent through the ring buffer ([`EVENTS`]), or, for `socket()`
//! events, written into this CPU's slots ([`STAGED`]).

use core::intrinsics::{atomic_xchg, AtomicOrdering};

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns};
use mptcpify_common::{
    event::{outcome, Ends, Event, Record},
    maps::{flag, Counter, Tag, STAGE_HEAD, STAGE_TAIL},
};

use crate::layout::field;
use crate::maps::{config, count, EVENTS, STAGED, STAGE_POS};
use crate::task;

/// An [`Event`] as 8-byte words (it has no padding, and its size is a
/// multiple of 8).
const EVENT_WORDS: usize = Event::SIZE / 8;
const _: () = assert!(Event::SIZE % 8 == 0);

/// `BPF_RB_NO_WAKEUP` (include/uapi/linux/bpf.h): submit without waking
/// the reader.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Slots of [`STAGED`] per CPU, a power of two; set by the loader
/// (`EbpfLoader::override_global`), a constant to the verifier.
#[unsafe(no_mangle)]
static STAGE_SLOTS: u32 = 0;

/// 1 where a plain store reaches the reader after the stores before it
/// (x86-64), so a slot is marked whole without an exchange; set by the
/// loader, a constant to the verifier.
#[unsafe(no_mangle)]
static STAGE_ORDERED: u32 = 0;

/// An event of an upgraded socket (closed, or its life while a monitor
/// listens), in the name of its creator; `option` carries the fallback
/// reason it has (`Tag::fallback`).
#[inline(always)]
pub fn report_tagged(tag: &Tag, outcome: u32, why: u32) {
    send(&Event {
        outcome,
        pid: tag.pid,
        tid: tag.tid,
        family: tag.family,
        option: tag.fallback,
        why,
        boot_ns: stamp(stamped()),
        comm: tag.comm,
        ..Event::default()
    });
}

/// A connection an upgraded listener accepted ([`outcome::ACCEPTED`]), in
/// the name of the accepting `task`, with its ends after the event.
#[inline(always)]
pub fn report_accepted(task: u64, why: u32, family: u32, ends: &Ends) {
    let record = Record {
        event: whole(
            task,
            Event {
                outcome: outcome::ACCEPTED,
                family,
                why,
                ..Event::default()
            },
            stamped(),
        ),
        ends: *ends,
    };
    if EVENTS.output::<Record>(&record, BPF_RB_NO_WAKEUP).is_err() {
        count(Counter::DroppedEvents);
    }
}

/// A socket's event, sent at `socket()`: `outcome` is an
/// [`mptcpify_common::event::outcome`] value, `why` its
/// [`Event::why`] (0 but for [`outcome::VERDICT`]); `task` is the calling
/// task ([`crate::layout::current_task`]).
///
/// [`outcome::VERDICT`]: mptcpify_common::event::outcome::VERDICT
#[inline(always)]
pub fn report(task: u64, outcome: u32, family: i32, why: u32, stamped: bool) {
    stage(&whole(
        task,
        Event {
            outcome,
            family: family as u32,
            why,
            ..Event::default()
        },
        stamped,
    ));
}

/// A refused socket option's event.
#[inline(always)]
pub fn report_option(task: u64, outcome: u32, level: u32, option: u32, errno: u32) {
    send(&whole(
        task,
        Event {
            outcome,
            level,
            option,
            errno,
            ..Event::default()
        },
        stamped(),
    ));
}

/// Adds who (from the task's own fields, as `bpf_get_current_pid_tgid` and
/// `bpf_get_current_comm` would give them, without their calls) and when
/// (if `stamped`).
#[inline(always)]
fn whole(task: u64, mut event: Event, stamped: bool) -> Event {
    event.pid = field!(task, u32, task.tgid);
    event.tid = field!(task, u32, task.pid);
    event.boot_ns = stamp(stamped);
    event.comm = task::comm(task);
    event
}

/// Whether somebody reads event times ([`flag::STAMP`]); the upgrader
/// knows it from the config it read already.
#[inline(always)]
pub fn stamped() -> bool {
    config().flags & flag::STAMP != 0
}

/// The time of an event when `stamped`; else 0, which the reader replaces
/// by the time it reads the event.
#[inline(always)]
fn stamp(stamped: bool) -> u64 {
    if !stamped {
        return 0;
    }
    // SAFETY: a helper without arguments.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// One helper call: `bpf_ringbuf_output` reserves, copies and commits.
/// Dropped when the ring is full (the counters still count). No wake-up
/// per event (a wake-up costs the socket() caller microseconds): the reader
/// drains the ring on a short timer instead (events.rs).
#[inline(always)]
fn send(event: &Event) {
    if EVENTS.output::<Event>(event, BPF_RB_NO_WAKEUP).is_err() {
        count(Counter::DroppedEvents);
    }
}

/// Puts a `socket()` event in this CPU's next free slot of [`STAGED`]
/// (protocol at [`mptcpify_common::maps::Staged`]): write the event, mark
/// it whole, then move this CPU's head past it. Dropped and counted when
/// the reader has not read the slot yet.
///
/// Only the upgrader stages events, and the kernel enters it at most once
/// per CPU at a time (`__bpf_prog_enter_recur`, kernel/bpf/trampoline.c: a
/// `socket()` on a CPU where a preempted task is inside the program runs
/// without it). So this CPU's head has one writer at a time: plain loads
/// and stores, no compare-and-swap. The mark is a plain store where stores
/// reach the reader in program order ([`STAGE_ORDERED`], x86-64), else an
/// exchange (a full barrier): either way the reader sees the event before
/// the mark.
#[inline(always)]
fn stage(event: &Event) {
    // SAFETY: aligned statics, read by value; helpers without arguments.
    let slots = unsafe { core::ptr::read_volatile(&STAGE_SLOTS) };
    let ordered = unsafe { core::ptr::read_volatile(&STAGE_ORDERED) } != 0;
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(position) = STAGE_POS.get_ptr_mut(cpu) else {
        count(Counter::DroppedEvents);
        return;
    };
    // SAFETY: aligned u64s in map values, shared with the reader (the BPF
    // target selects no atomic load before BPF ISA v4).
    let (head, at, read) = unsafe {
        let head = &raw mut (*position)[STAGE_HEAD as usize];
        (
            head,
            core::ptr::read_volatile(head),
            core::ptr::read_volatile(&raw const (*position)[STAGE_TAIL as usize]),
        )
    };
    let index = cpu
        .wrapping_mul(slots)
        .wrapping_add(at as u32 & slots.wrapping_sub(1));
    let Some(slot) = STAGED.get_ptr_mut(index) else {
        count(Counter::DroppedEvents);
        return;
    };
    if at.wrapping_sub(read) >= u64::from(slots) {
        count(Counter::DroppedEvents);
        return;
    }
    // SAFETY: this CPU's next slot, which the reader has read (or never
    // had) and reads again only once marked whole; the head's one writer.
    // The event goes in as whole words straight from registers: written
    // as a struct (volatile), it was first built on the stack and then
    // copied a field at a time, twice the memory accesses.
    unsafe {
        let words: [u64; EVENT_WORDS] = core::mem::transmute(*event);
        let to = (&raw mut (*slot).event).cast::<u64>();
        for (i, word) in words.into_iter().enumerate() {
            core::ptr::write_volatile(to.add(i), word);
        }
        if ordered {
            core::ptr::write_volatile(&raw mut (*slot).committed, at + 1);
        } else {
            atomic_xchg::<u64, { AtomicOrdering::AcqRel }>(&raw mut (*slot).committed, at + 1);
        }
        core::ptr::write_volatile(head, at + 1);
    }
}
