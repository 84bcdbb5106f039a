//! Writes the running kernel's layout into the programs' instructions
//! ([`mptcpify_common::maps::field`]): a field's offset into the load that
//! reads it, what a CO-RE relocation does for a toolchain that emits none;
//! and a value the programs compute with into a move of an immediate.
//!
//! By hand, on the object's bytes before aya parses them: aya 0.14 has no
//! step between parsing and loading that rewrites instructions, and CO-RE
//! (aya's or libbpf's) needs relocation records that Rust's BPF target
//! does not write. The `object` crate finds the program sections.

use mptcpify_common::maps::{field, KernelLayout};
use object::{Object as _, ObjectSection as _, SectionKind};

/// One BPF instruction's size; `ld_imm64` takes two, the second with
/// opcode 0, which no test below matches.
const INSTRUCTION: usize = 8;
/// The opcode's class and mode (include/uapi/linux/bpf_common.h): a
/// `BPF_LDX | BPF_MEM` load, `dst = *(size *)(src + off)`.
const CLASS_MASK: u8 = 0x07;
const BPF_LDX: u8 = 0x01;
const MODE_MASK: u8 = 0xe0;
const BPF_MEM: u8 = 0x60;
/// The frame pointer: a marked load from the stack stands for a constant.
const FRAME_POINTER: u8 = 10;
/// `BPF_ALU64 | BPF_MOV | BPF_K`: `dst = imm` (sign-extended).
const MOV64_IMM: u8 = 0xb7;

/// The object with the offsets written in, 8-byte aligned as the ELF
/// parser wants it (aya::include_bytes_aligned! for the embedded one).
pub struct Patched {
    words: Vec<u64>,
    len: usize,
}

impl Patched {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of the vector's initialised words.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }
}

/// `object` with every marked load's offset replaced by `layout`'s. `Err`
/// names the first offset that does not fit an instruction (a kernel whose
/// structures outgrew 32 KiB there), or an object that does not parse.
pub fn patch(object: &[u8], layout: &KernelLayout) -> Result<Patched, String> {
    // SAFETY: KernelLayout is plain `repr(C)` data without padding (its
    // size is asserted in mptcpify-common), so every byte is initialised.
    let layout = unsafe {
        std::slice::from_raw_parts(
            (layout as *const KernelLayout).cast::<u8>(),
            std::mem::size_of::<KernelLayout>(),
        )
    };
    let mut patched = Patched {
        words: vec![0; object.len().div_ceil(8)],
        len: object.len(),
    };
    patched.bytes_mut().copy_from_slice(object);
    let file =
        object::File::parse(object).map_err(|e| format!("parsing the embedded BPF object: {e}"))?;
    let bytes = patched.bytes_mut();
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let Some((start, size)) = section.file_range() else {
            continue;
        };
        let (start, size) = (start as usize, size as usize);
        let code = bytes
            .get_mut(start..start + size)
            .ok_or("the BPF object's program section lies outside the object")?;
        for (index, instruction) in code.chunks_exact_mut(INSTRUCTION).enumerate() {
            if instruction[0] & CLASS_MASK != BPF_LDX || instruction[0] & MODE_MASK != BPF_MEM {
                continue;
            }
            let offset = i16::from_le_bytes([instruction[2], instruction[3]]);
            let Some(value) = field::resolve(offset, layout) else {
                continue;
            };
            let too_large = |what: &str| {
                format!(
                    "the kernel's {what}, {value}, does not fit a BPF instruction \
                     (instruction {index} of {})",
                    section.name().unwrap_or("?")
                )
            };
            if instruction[1] >> 4 == FRAME_POINTER {
                // `dst = *(u32 *)(r10 + marker)` becomes `dst = value`.
                let value = i32::try_from(value).map_err(|_| too_large("layout value"))?;
                instruction[0] = MOV64_IMM;
                instruction[1] &= 0x0f;
                instruction[2..4].fill(0);
                instruction[4..8].copy_from_slice(&value.to_le_bytes());
            } else {
                let value = i16::try_from(value)
                    .map_err(|_| too_large("field offset (a load has 16 bits)"))?;
                instruction[2..4].copy_from_slice(&value.to_le_bytes());
            }
        }
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::loader::OBJECT;

    /// The instructions of every program section, in order.
    fn instructions(object: &[u8]) -> Vec<[u8; INSTRUCTION]> {
        let file = object::File::parse(object).unwrap();
        file.sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .flat_map(|s| {
                s.data()
                    .unwrap()
                    .chunks_exact(INSTRUCTION)
                    .map(|i| i.try_into().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn layout_bytes(layout: &KernelLayout) -> Vec<u8> {
        // SAFETY: plain data, as in `patch`.
        unsafe {
            std::slice::from_raw_parts(
                (layout as *const KernelLayout).cast::<u8>(),
                std::mem::size_of::<KernelLayout>(),
            )
        }
        .to_vec()
    }

    /// A marked field load gets the layout's offset (here a distinct one
    /// per field), a marked stack load becomes a move of the layout's
    /// value, every other instruction is left as it was, and no marker is
    /// left for the verifier to refuse.
    #[test]
    fn every_marked_instruction_gets_the_kernels_value_and_only_those() {
        let mut layout = KernelLayout::default();
        layout.task.pid = 1000;
        layout.task.tgid = 1004;
        layout.task.comm = 2000;
        layout.netns.task_nsproxy = 3000;
        layout.netns.net_generic_ptr = 16;
        layout.rb_node_type = 70_000;
        layout.present = 7;
        let bytes = layout_bytes(&layout);
        let before = instructions(OBJECT);
        let after = instructions(patch(OBJECT, &layout).unwrap().bytes());
        assert_eq!(before.len(), after.len());
        let (mut loads, mut moves) = (0, 0);
        for (old, new) in before.iter().zip(&after) {
            let is_load = old[0] & CLASS_MASK == BPF_LDX && old[0] & MODE_MASK == BPF_MEM;
            match field::resolve(offset_of(old), &bytes).filter(|_| is_load) {
                Some(value) if old[1] >> 4 == FRAME_POINTER => {
                    moves += 1;
                    assert_eq!(new[0], MOV64_IMM);
                    assert_eq!(new[1], old[1] & 0x0f, "same destination, no source");
                    assert_eq!(offset_of(new), 0);
                    assert_eq!(
                        i64::from(i32::from_le_bytes(new[4..].try_into().unwrap())),
                        value
                    );
                }
                Some(value) => {
                    loads += 1;
                    assert_eq!((new[0], new[1], &new[4..]), (old[0], old[1], &old[4..]));
                    assert_eq!(i64::from(offset_of(new)), value);
                }
                None => assert_eq!(old, new),
            }
            let still_marked = new[0] & CLASS_MASK == BPF_LDX
                && new[0] & MODE_MASK == BPF_MEM
                && field::resolve(offset_of(new), &bytes).is_some();
            assert!(!still_marked, "a marker is left: {new:?}");
        }
        assert!(loads > 20, "only {loads} marked loads: is field! used?");
        assert!(
            moves > 10,
            "only {moves} marked constants: is layout! used?"
        );
        let marked = |field: i16| {
            before
                .iter()
                .position(|i| offset_of(i) == field)
                .map(|at| after[at])
                .expect("an instruction with that marker")
        };
        let pid = marked(field::marker(
            std::mem::offset_of!(KernelLayout, task.pid),
            0,
        ));
        assert_eq!(offset_of(&pid), 1000);
        let comm = marked(field::marker(
            std::mem::offset_of!(KernelLayout, task.comm),
            8,
        ));
        assert_eq!(offset_of(&comm), 2008);
        let rb_node = marked(field::marker(
            std::mem::offset_of!(KernelLayout, rb_node_type),
            0,
        ));
        assert_eq!(
            (rb_node[0], &rb_node[4..]),
            (MOV64_IMM, &70_000i32.to_le_bytes()[..])
        );
    }

    fn offset_of(instruction: &[u8; INSTRUCTION]) -> i16 {
        i16::from_le_bytes([instruction[2], instruction[3]])
    }

    #[test]
    fn a_value_beyond_an_instructions_reach_is_an_error_that_says_so() {
        let mut layout = KernelLayout::default();
        layout.task.pid = 40_000;
        let error = patch(OBJECT, &layout).err().expect("refused");
        assert!(
            error.contains("40000") && error.contains("16 bits"),
            "{error}"
        );
        let layout = KernelLayout {
            rb_node_type: u32::MAX,
            ..KernelLayout::default()
        };
        let error = patch(OBJECT, &layout).err().expect("refused");
        assert!(error.contains(&u32::MAX.to_string()), "{error}");
    }
}
