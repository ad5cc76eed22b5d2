//! A builder of small synthetic BTF blobs, and a sample one, for the tests.

use super::super::*;

// Raw kind numbers, as written by the builder.
pub(super) const INT: u32 = 1;
pub(super) const PTR: u32 = 2;
pub(super) const ARRAY: u32 = 3;
pub(super) const STRUCT: u32 = 4;
pub(super) const UNION: u32 = 5;
pub(super) const ENUM: u32 = 6;
pub(super) const FWD: u32 = 7;
pub(super) const TYPEDEF: u32 = 8;
pub(super) const VOLATILE: u32 = 9;
pub(super) const CONST: u32 = 10;
pub(super) const RESTRICT: u32 = 11;
pub(super) const FUNC: u32 = 12;
pub(super) const FUNC_PROTO: u32 = 13;
pub(super) const VAR: u32 = 14;
pub(super) const DATASEC: u32 = 15;
pub(super) const FLOAT: u32 = 16;
pub(super) const DECL_TAG: u32 = 17;
pub(super) const TYPE_TAG: u32 = 18;
pub(super) const ENUM64: u32 = 19;

/// Writes synthetic BTF blobs. Each method appends one type and returns
/// its id; member offsets are given in bits, as in BTF.
pub(super) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    pub(super) next_id: u32,
    /// Where this blob's strings start: 0, or for split BTF its base's
    /// string section length.
    str_base: u32,
}

impl Builder {
    pub(super) fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            str_base: 0,
        }
    }

    /// Split BTF on top of `base`: ids continue after base's, string
    /// offsets after its string section (which this one does not repeat).
    pub(super) fn split_of(base: &Builder) -> Self {
        Builder {
            types: Vec::new(),
            strings: Vec::new(),
            next_id: base.next_id,
            str_base: base.str_base + base.strings.len() as u32,
        }
    }

    /// The offset of `s` in the base's strings (for split blobs that reuse
    /// a base's name, as pahole's deduplication does).
    pub(super) fn name_in(&self, s: &str) -> u32 {
        let at = self
            .strings
            .windows(s.len() + 2)
            .position(|w| w[0] == 0 && &w[1..=s.len()] == s.as_bytes() && w[s.len() + 1] == 0)
            .expect("name in base strings");
        self.str_base + at as u32 + 1
    }

    pub(super) fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let offset = self.str_base + self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        offset
    }

    pub(super) fn raw(
        &mut self,
        name: &str,
        kind: u32,
        kind_flag: bool,
        vlen: usize,
        size_or_type: u32,
        trailing: &[u32],
    ) -> u32 {
        let name_off = self.name(name);
        let info = vlen as u32 | kind << 24 | u32::from(kind_flag) << 31;
        for word in [name_off, info, size_or_type].iter().chain(trailing) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    /// A type record whose name (and members' names, in `trailing`) are
    /// string offsets already: a split blob's may point into its base's.
    pub(super) fn raw_named(
        &mut self,
        name_off: u32,
        kind: u32,
        vlen: usize,
        size_or_type: u32,
        trailing: &[u32],
    ) -> u32 {
        let info = vlen as u32 | kind << 24;
        for word in [name_off, info, size_or_type].iter().chain(trailing) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    /// Pads the string section with NULs to `len` bytes.
    pub(super) fn pad_strings(&mut self, len: usize) {
        self.strings.resize(len.max(self.strings.len()), 0);
    }

    pub(super) fn int(&mut self, name: &str, size: u32) -> u32 {
        self.raw(name, INT, false, 0, size, &[size * 8])
    }

    pub(super) fn int_encoded(&mut self, name: &str, size: u32, bits: u32, bit_offset: u32) -> u32 {
        self.raw(name, INT, false, 0, size, &[bits | bit_offset << 16])
    }

    pub(super) fn ptr(&mut self, target: u32) -> u32 {
        self.raw("", PTR, false, 0, target, &[])
    }

    pub(super) fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
        self.raw("", ARRAY, false, 0, 0, &[elem, index, nelems])
    }

    pub(super) fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kind_flag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let mut trailing = Vec::new();
        for &(member, type_id, offset) in members {
            trailing.extend([self.name(member), type_id, offset]);
        }
        self.raw(name, kind, kind_flag, members.len(), size, &trailing)
    }

    pub(super) fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(STRUCT, name, size, false, members)
    }

    pub(super) fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(UNION, name, size, false, members)
    }

    /// Struct with kind_flag set: offsets are `bitfield_size << 24 | bit_offset`.
    pub(super) fn struct_kf(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(STRUCT, name, size, true, members)
    }

    pub(super) fn enum32(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
        let mut trailing = Vec::new();
        for &(n, v) in values {
            trailing.extend([self.name(n), v as u32]);
        }
        self.raw(name, ENUM, false, values.len(), 4, &trailing)
    }

    pub(super) fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
        let mut trailing = Vec::new();
        for &(n, v) in values {
            trailing.extend([self.name(n), v as u32, (v >> 32) as u32]);
        }
        self.raw(name, ENUM64, false, values.len(), 8, &trailing)
    }

    pub(super) fn modifier(&mut self, kind: u32, name: &str, target: u32) -> u32 {
        self.raw(name, kind, false, 0, target, &[])
    }

    pub(super) fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.modifier(TYPEDEF, name, target)
    }

    /// Every kind at least once, so a wrong record length for any of them
    /// shifts all later types and breaks the lookups that follow.
    pub(super) fn all_kinds(&mut self) {
        let int = self.int("int", 4);
        let ptr = self.ptr(int);
        self.array(int, int, 3);
        self.struct_("filler_s", 8, &[("a", int, 0), ("b", ptr, 0)]);
        self.union_("filler_u", 8, &[("c", int, 0)]);
        self.enum32("filler_e", &[("FE_A", 1), ("FE_B", 2)]);
        self.raw("filler_fwd", FWD, true, 0, 0, &[]);
        self.typedef("filler_t", int);
        self.modifier(VOLATILE, "", int);
        self.modifier(CONST, "", int);
        self.modifier(RESTRICT, "", ptr);
        let (a, b) = (self.name("a"), self.name("b"));
        let proto = self.raw("", FUNC_PROTO, false, 2, int, &[a, int, b, ptr]);
        self.raw("filler_fn", FUNC, false, 1, proto, &[]);
        let var = self.raw("filler_var", VAR, false, 0, int, &[1]);
        self.raw(".data", DATASEC, false, 1, 4, &[var, 0, 4]);
        self.raw("double", FLOAT, false, 0, 8, &[]);
        self.raw("filler_tag", DECL_TAG, false, 0, var, &[u32::MAX]);
        self.modifier(TYPE_TAG, "rcu", int);
        self.enum64("filler_e64", &[("FE64_A", 1 << 40)]);
    }

    pub(super) fn build(&self) -> Vec<u8> {
        let type_len = self.types.len() as u32;
        let str_len = self.strings.len() as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        out.extend([BTF_VERSION, 0]);
        for word in [HEADER_LEN as u32, 0, type_len, type_len, str_len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A blob exercising every kind and every lookup path; used by the
/// corruption tests.
pub(super) fn sample_blob() -> Vec<u8> {
    let mut b = Builder::new();
    b.all_kinds();
    let u32_t = b.int("unsigned int", 4);
    let u16_t = b.int("short unsigned int", 2);
    let char_t = b.int("char", 1);
    let fwd = b.raw("net_device", FWD, false, 0, 0, &[]);
    let dev_ptr = b.ptr(fwd);
    let name_arr = b.array(char_t, u32_t, 16);
    let inner = b.struct_("", 8, &[("x", u32_t, 0), ("hdr", u16_t, 32)]);
    let anon_union = b.union_("", 8, &[("", inner, 0), ("dev", dev_ptr, 0)]);
    let tdef = b.typedef("possible_t", anon_union);
    b.struct_kf(
        "outer",
        40,
        &[
            ("a", u32_t, 0),
            ("", tdef, 64),
            ("flag", u32_t, 1 << 24 | 128),
            ("name", name_arr, 192),
        ],
    );
    b.struct_("wrapper", 48, &[("pad", u32_t, 0), ("o", tdef, 64)]);
    b.enum32("color", &[("RED", 0), ("GREEN", 1), ("NEG", -1)]);
    b.build()
}

/// Runs every public lookup; used to show that nothing panics.
pub(super) fn exercise(btf: &Btf) {
    for name in ["outer", "wrapper", "color", "filler_s", "filler_e64", ""] {
        let _ = btf.enum_values(name);
        for m in ["a", "x", "hdr", "dev", "flag", "name", "o", ""] {
            let _ = btf.member(name, m);
        }
        let _ = btf.member_path(name, &["o", "x"]);
        let _ = btf.member_path(name, &["o", "dev", "x"]);
    }
}
