//! Minimal reader for raw Linux kernel BTF (BPF Type Format).
//!
//! netdrop uses this at start-up, before it loads its eBPF program, for two
//! things that differ between kernel versions and configurations:
//!
//! * the names of the drop reasons, read from `enum skb_drop_reason`
//!   (see [`Btf::enum_values`]);
//! * the byte offsets of the struct members the eBPF program reads
//!   (`sk_buff.dev`, `net_device.ifindex`, ...), which are handed to the
//!   eBPF program so it does not depend on one kernel's layout
//!   (see [`Btf::member`] and [`Btf::member_path`]).
//!
//! The input is the raw format the kernel exports at `/sys/kernel/btf/vmlinux`
//! (described in the kernel's `Documentation/bpf/btf.rst`): a `btf_header`,
//! then the type section (a sequence of `btf_type` records, each followed by
//! kind-specific data) and the string section (NUL-terminated names).
//! Parsing walks the type section once, recording where each type starts,
//! and builds a name index of the struct, union and enum types, so later
//! lookups do not scan the ~130 000 types of a real vmlinux.
//!
//! What this module deliberately does not do:
//!
//! * Big-endian BTF is not supported: a byte-swapped magic is an error.
//! * No split BTF: kernel-module BTF (`/sys/kernel/btf/<module>`) refers to
//!   vmlinux type ids, which are simply not found here.
//! * No ELF parsing, no `.BTF.ext`, no CO-RE relocations, no writing or
//!   deduplication of BTF.
//! * No full validation like the kernel's BTF verifier. Parsing checks only
//!   what is needed to walk the data safely (header, section bounds, known
//!   kinds, every record complete). Dangling type ids, reference cycles,
//!   unreadable names and the like are met lazily and make lookups return
//!   `None`. Nothing panics on any input.
//! * Pointers are taken to be 8 bytes: netdrop supports 64-bit kernels only.
//! * Enum values are returned raw (not sign-extended for signed enums).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// `btf_header.magic` as read on a little-endian system.
const BTF_MAGIC: u16 = 0xEB9F;
/// The only BTF version that exists.
const BTF_VERSION: u8 = 1;
/// Size of the fixed part of `struct btf_header`; `hdr_len` may be larger.
const HEADER_LEN: usize = 24;
/// Size of `struct btf_type` (name_off, info, size/type).
const TYPE_HEADER_LEN: usize = 12;
/// Size of a pointer on the (64-bit) kernels netdrop supports.
const POINTER_SIZE: u32 = 8;
/// Longest typedef/modifier/array chain followed before giving up; real
/// kernels need fewer than 10 steps, the limit only stops cycles.
const MAX_TYPE_CHAIN: usize = 64;
/// Deepest nesting of anonymous struct/union members searched; real kernels
/// nest a handful of levels, the limit only protects the stack.
const MAX_ANON_DEPTH: usize = 32;

/// Why BTF data could not be read or parsed.
///
/// The file-level variants (`Io`, `InFile`) name the path; the underlying
/// cause is their [`source`](std::error::Error::source), so print the whole
/// chain (e.g. anyhow's `{:#}`) to see it.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid BTF in file {}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<BtfError>,
    },
    #[error("BTF data is too short for a BTF header: {len} bytes, need at least {HEADER_LEN}")]
    TooShort { len: usize },
    #[error("not BTF data: bad magic {found:#06x}, expected {BTF_MAGIC:#06x}")]
    BadMagic { found: u16 },
    #[error("BTF data is big-endian (byte-swapped magic); only little-endian BTF is supported")]
    BigEndian,
    #[error("unsupported BTF version {found}, expected {BTF_VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error(
        "bad BTF header length {hdr_len}: must be at least {HEADER_LEN} and within the {len} bytes of data"
    )]
    BadHeaderLen { hdr_len: u32, len: usize },
    #[error("BTF {section} section (bytes {start}..{end}) lies outside the {len} bytes of data")]
    SectionOutOfBounds {
        section: &'static str,
        start: u64,
        end: u64,
        len: usize,
    },
    #[error(
        "BTF type section truncated: type id {type_id} at byte {offset} of the section is incomplete"
    )]
    Truncated { type_id: u32, offset: usize },
    #[error("BTF type id {type_id} has unknown kind {kind}; cannot skip it")]
    UnknownKind { type_id: u32, kind: u32 },
}

/// Location of a struct member, as found by [`Btf::member`] and [`Btf::member_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Bytes from the start of the outermost struct named in the lookup.
    pub offset: u32,
    /// Size in bytes of the member's type, resolved through typedefs and
    /// modifiers (const, volatile, ...); arrays are element size × count;
    /// pointers are 8.
    pub size: u32,
}

/// The BTF kinds (`BTF_KIND_*` in `include/uapi/linux/btf.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Kind> {
        Some(match raw {
            1 => Kind::Int,
            2 => Kind::Ptr,
            3 => Kind::Array,
            4 => Kind::Struct,
            5 => Kind::Union,
            6 => Kind::Enum,
            7 => Kind::Fwd,
            8 => Kind::Typedef,
            9 => Kind::Volatile,
            10 => Kind::Const,
            11 => Kind::Restrict,
            12 => Kind::Func,
            13 => Kind::FuncProto,
            14 => Kind::Var,
            15 => Kind::Datasec,
            16 => Kind::Float,
            17 => Kind::DeclTag,
            18 => Kind::TypeTag,
            19 => Kind::Enum64,
            _ => return None,
        })
    }

    /// Number of bytes of kind-specific data that follow the `btf_type`
    /// record, given its `vlen`.
    fn trailing_len(self, vlen: usize) -> usize {
        match self {
            // u32 encoding (bits, bit offset, signedness).
            Kind::Int => 4,
            // struct btf_array { type, index_type, nelems }.
            Kind::Array => 12,
            // struct btf_member { name_off, type, offset } each.
            Kind::Struct | Kind::Union => vlen * 12,
            // struct btf_enum { name_off, val } each.
            Kind::Enum => vlen * 8,
            // struct btf_param { name_off, type } each.
            Kind::FuncProto => vlen * 8,
            // struct btf_var { linkage }.
            Kind::Var => 4,
            // struct btf_var_secinfo { type, offset, size } each.
            Kind::Datasec => vlen * 12,
            // struct btf_decl_tag { component_idx }.
            Kind::DeclTag => 4,
            // struct btf_enum64 { name_off, val_lo32, val_hi32 } each.
            Kind::Enum64 => vlen * 12,
            // Nothing follows; FUNC uses vlen for linkage, not for entries.
            Kind::Ptr
            | Kind::Fwd
            | Kind::Typedef
            | Kind::Volatile
            | Kind::Const
            | Kind::Restrict
            | Kind::Func
            | Kind::Float
            | Kind::TypeTag => 0,
        }
    }

    /// Kinds that merely qualify or rename another type.
    fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Typedef | Kind::Volatile | Kind::Const | Kind::Restrict | Kind::TypeTag
        )
    }

    fn is_composite(self) -> bool {
        matches!(self, Kind::Struct | Kind::Union)
    }

    fn is_enum(self) -> bool {
        matches!(self, Kind::Enum | Kind::Enum64)
    }
}

/// One decoded `btf_type` record; its kind-specific data stays in
/// `Btf::type_data` at `trailing`.
#[derive(Debug, Clone, Copy)]
struct TypeEntry {
    kind: Kind,
    kind_flag: bool,
    vlen: u16,
    /// `size` for INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC;
    /// the referenced type id for the other kinds.
    size_or_type: u32,
    /// Offset of the kind-specific data within the type section.
    trailing: u32,
}

/// One `struct btf_member`.
struct RawMember {
    name_off: u32,
    type_id: u32,
    /// Bit offset, or with the struct's kind_flag set:
    /// `bitfield_size << 24 | bit_offset`.
    offset: u32,
}

/// Result of searching one struct/union (and its anonymous members) for a name.
enum Lookup {
    Member { bit_offset: u64, type_id: u32 },
    Bitfield,
    Missing,
}

/// Parsed kernel BTF, ready for name lookups.
pub struct Btf {
    /// Type id `n` is `types[n - 1]`; id 0 is `void` and has no entry.
    types: Vec<TypeEntry>,
    /// Copy of the type section.
    type_data: Vec<u8>,
    /// Copy of the string section.
    strings: Vec<u8>,
    /// Name → ids (ascending) of the named STRUCT, UNION, ENUM and ENUM64
    /// types, the only kinds looked up by name.
    by_name: HashMap<Box<str>, Vec<u32>>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .field("indexed_names", &self.by_name.len())
            .finish()
    }
}

impl Btf {
    /// Reads and parses a raw BTF file such as `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Btf::parse(&bytes).map_err(|e| BtfError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parses raw little-endian BTF: header, type section, string section.
    /// Bytes after the two sections are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        let too_short = BtfError::TooShort { len: bytes.len() };
        let header = bytes.get(..HEADER_LEN).ok_or(too_short)?;
        let field = |at: usize| read_u32(header, at).unwrap_or_default();

        let magic = u16::from_le_bytes([header[0], header[1]]);
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(BtfError::BigEndian);
        }
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic { found: magic });
        }
        if header[2] != BTF_VERSION {
            return Err(BtfError::UnsupportedVersion { found: header[2] });
        }
        // header[3] is `flags`, unused so far.
        let hdr_len = field(4);
        if (hdr_len as usize) < HEADER_LEN || hdr_len as usize > bytes.len() {
            return Err(BtfError::BadHeaderLen {
                hdr_len,
                len: bytes.len(),
            });
        }
        // Section offsets are relative to the end of the header.
        let type_data = section(bytes, "type", hdr_len, field(8), field(12))?;
        let strings = section(bytes, "string", hdr_len, field(16), field(20))?;

        // Real vmlinux types average about 40 bytes each.
        let mut types = Vec::with_capacity(type_data.len() / 40);
        let mut by_name: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        let mut pos = 0usize;
        while pos < type_data.len() {
            // The type section is at most u32::MAX bytes with >= 12 bytes
            // per type, so ids always fit in a u32.
            let type_id = u32::try_from(types.len() + 1).unwrap_or(u32::MAX);
            let truncated = BtfError::Truncated {
                type_id,
                offset: pos,
            };
            let record = type_data.get(pos..pos + TYPE_HEADER_LEN).ok_or(truncated)?;
            let name_off = read_u32(record, 0).unwrap_or_default();
            let info = read_u32(record, 4).unwrap_or_default();
            let size_or_type = read_u32(record, 8).unwrap_or_default();

            // info: bits 0-15 vlen, bits 24-28 kind, bit 31 kind_flag.
            let raw_kind = (info >> 24) & 0x1f;
            let kind = Kind::from_raw(raw_kind).ok_or(BtfError::UnknownKind {
                type_id,
                kind: raw_kind,
            })?;
            let vlen = (info & 0xffff) as u16;
            let trailing = pos + TYPE_HEADER_LEN;
            let end = trailing + kind.trailing_len(vlen.into());
            if end > type_data.len() {
                return Err(BtfError::Truncated {
                    type_id,
                    offset: pos,
                });
            }
            types.push(TypeEntry {
                kind,
                kind_flag: info >> 31 != 0,
                vlen,
                size_or_type,
                // `trailing` < type_data.len() <= u32::MAX.
                trailing: u32::try_from(trailing).unwrap_or(u32::MAX),
            });

            if (kind.is_composite() || kind.is_enum()) && name_off != 0 {
                // Names that are not valid strings are left out of the
                // index: such types cannot be looked up by name.
                if let Some(name) =
                    str_at(strings, name_off).and_then(|b| std::str::from_utf8(b).ok())
                    && !name.is_empty()
                {
                    match by_name.get_mut(name) {
                        Some(ids) => ids.push(type_id),
                        None => {
                            by_name.insert(name.into(), vec![type_id]);
                        }
                    }
                }
            }
            pos = end;
        }

        Ok(Btf {
            types,
            type_data: type_data.to_vec(),
            strings: strings.to_vec(),
            by_name,
        })
    }

    /// Enumerators `(name, value)` of the first ENUM or ENUM64 type with
    /// this name, in declaration order. Values are raw: a 32-bit enum's
    /// value is zero-extended, never sign-extended. An enum that is only
    /// declared (no enumerators) is skipped in favour of a complete one
    /// of the same name, if any.
    pub fn enum_values(&self, enum_name: &str) -> Option<Vec<(String, u64)>> {
        let mut declared_only = false;
        for &id in self.ids_named(enum_name) {
            let Some(t) = self.ty(id) else { continue };
            if !t.kind.is_enum() {
                continue;
            }
            if t.vlen == 0 {
                declared_only = true;
                continue;
            }
            return Some(self.enumerators(t));
        }
        declared_only.then(Vec::new)
    }

    /// Byte offset and size of `member` in the struct or union named
    /// `struct_name`. Anonymous struct/union members are searched
    /// recursively (in declaration order) and their offsets added, so e.g.
    /// `sk_buff.dev` and `sk_buff.network_header` are found although they
    /// sit inside anonymous unions/structs.
    ///
    /// Returns `None` if there is no such struct or member, if the member is
    /// a bitfield, or if its size cannot be determined. If several structs
    /// share the name, the first one that has the member is used.
    pub fn member(&self, struct_name: &str, member: &str) -> Option<Member> {
        self.member_path(struct_name, &[member])
    }

    /// Follows a path of named members, e.g.
    /// `member_path("sock", &["__sk_common", "skc_net", "net"])`, and
    /// returns the offset of the last one from the start of `struct_name`
    /// (the sum of the offsets along the way) and its size.
    ///
    /// Each step is looked up like [`Btf::member`] (anonymous members
    /// included) in the struct or union that the previous member's type
    /// names once typedefs and modifiers are stripped. Pointers are not
    /// followed: a step into a pointer member gives `None`, as does an empty
    /// path. If several structs share `struct_name`, the first one that has
    /// the first member is used.
    pub fn member_path(&self, struct_name: &str, path: &[&str]) -> Option<Member> {
        let (first, rest) = path.split_first()?;
        for &id in self.ids_named(struct_name) {
            match self.find_member(id, first) {
                Lookup::Missing => continue,
                Lookup::Bitfield => return None,
                Lookup::Member {
                    bit_offset,
                    type_id,
                } => return self.follow_path(bit_offset, type_id, rest),
            }
        }
        None
    }

    /// Continues a member path from a member at `bit_offset` of type
    /// `type_id`, then turns the result into a byte offset and size.
    fn follow_path(&self, mut bit_offset: u64, mut type_id: u32, rest: &[&str]) -> Option<Member> {
        for step in rest {
            let (inner, t) = self.skip_modifiers(type_id)?;
            if !t.kind.is_composite() {
                return None;
            }
            match self.find_member(inner, step) {
                Lookup::Member {
                    bit_offset: off,
                    type_id: next,
                } => {
                    bit_offset = bit_offset.checked_add(off)?;
                    type_id = next;
                }
                Lookup::Bitfield | Lookup::Missing => return None,
            }
        }
        if !bit_offset.is_multiple_of(8) {
            return None;
        }
        Some(Member {
            offset: u32::try_from(bit_offset / 8).ok()?,
            size: self.type_size(type_id)?,
        })
    }

    /// Searches the struct/union `id` for a member called `name`,
    /// descending into anonymous struct/union members.
    fn find_member(&self, id: u32, name: &str) -> Lookup {
        if name.is_empty() {
            // Would otherwise match the first anonymous member.
            return Lookup::Missing;
        }
        let mut visited = HashSet::new();
        self.find_member_in(id, name.as_bytes(), 0, &mut visited)
    }

    /// Recursive part of [`Btf::find_member`]. `visited` holds the composite
    /// types already searched: searching one again could not find anything
    /// new, so this keeps the work linear and stops reference cycles in
    /// corrupt data.
    fn find_member_in(
        &self,
        id: u32,
        name: &[u8],
        depth: usize,
        visited: &mut HashSet<u32>,
    ) -> Lookup {
        if depth > MAX_ANON_DEPTH || !visited.insert(id) {
            return Lookup::Missing;
        }
        let Some(t) = self.ty(id) else {
            return Lookup::Missing;
        };
        if !t.kind.is_composite() {
            return Lookup::Missing;
        }
        for m in self.members(t) {
            let (bit_offset, bitfield_size) = if t.kind_flag {
                (m.offset & 0x00ff_ffff, m.offset >> 24)
            } else {
                (m.offset, 0)
            };
            match self.str_bytes(m.name_off) {
                Some(member_name) if member_name == name => {
                    // With kind_flag clear, old-style bitfields are marked in
                    // the INT type's encoding instead.
                    let bitfield = bitfield_size != 0
                        || !bit_offset.is_multiple_of(8)
                        || (!t.kind_flag && self.is_int_bitfield(m.type_id));
                    return if bitfield {
                        Lookup::Bitfield
                    } else {
                        Lookup::Member {
                            bit_offset: bit_offset.into(),
                            type_id: m.type_id,
                        }
                    };
                }
                Some([]) => {
                    // Anonymous member: if it is a struct/union, its members
                    // belong to the enclosing struct's namespace.
                    let Some((inner, inner_t)) = self.skip_modifiers(m.type_id) else {
                        continue;
                    };
                    if !inner_t.kind.is_composite() {
                        continue;
                    }
                    match self.find_member_in(inner, name, depth + 1, visited) {
                        Lookup::Member {
                            bit_offset: inner_offset,
                            type_id,
                        } => {
                            return Lookup::Member {
                                bit_offset: u64::from(bit_offset) + inner_offset,
                                type_id,
                            };
                        }
                        Lookup::Bitfield => return Lookup::Bitfield,
                        Lookup::Missing => {}
                    }
                }
                _ => {}
            }
        }
        Lookup::Missing
    }

    /// Whether `type_id` is an INT whose encoding describes a bitfield
    /// (non-zero bit offset or fewer bits than its size), the encoding used
    /// for struct members when the struct's kind_flag is clear.
    fn is_int_bitfield(&self, type_id: u32) -> bool {
        let Some((_, t)) = self.skip_modifiers(type_id) else {
            return false;
        };
        if t.kind != Kind::Int {
            return false;
        }
        let encoding = self.trailing_u32(t, 0).unwrap_or_default();
        let bits = u64::from(encoding & 0xff);
        let bit_offset = (encoding >> 16) & 0xff;
        bit_offset != 0 || bits != u64::from(t.size_or_type) * 8
    }

    /// Size in bytes of a type, through typedefs, modifiers and arrays.
    fn type_size(&self, mut type_id: u32) -> Option<u32> {
        let mut count: u32 = 1;
        for _ in 0..MAX_TYPE_CHAIN {
            let t = self.ty(type_id)?;
            match t.kind {
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float
                | Kind::Datasec => return count.checked_mul(t.size_or_type),
                Kind::Ptr => return count.checked_mul(POINTER_SIZE),
                Kind::Array => {
                    // struct btf_array { type, index_type, nelems }.
                    let elem = self.trailing_u32(t, 0)?;
                    let nelems = self.trailing_u32(t, 8)?;
                    count = count.checked_mul(nelems)?;
                    type_id = elem;
                }
                kind if kind.is_modifier() => type_id = t.size_or_type,
                // void, functions, forward declarations, variables, tags.
                _ => return None,
            }
        }
        None
    }

    /// Follows typedefs and modifiers to the underlying type.
    fn skip_modifiers(&self, mut type_id: u32) -> Option<(u32, &TypeEntry)> {
        for _ in 0..MAX_TYPE_CHAIN {
            let t = self.ty(type_id)?;
            if !t.kind.is_modifier() {
                return Some((type_id, t));
            }
            type_id = t.size_or_type;
        }
        None
    }

    /// The type with this id; `None` for void (0) and ids out of range.
    fn ty(&self, type_id: u32) -> Option<&TypeEntry> {
        let index = usize::try_from(type_id).ok()?.checked_sub(1)?;
        self.types.get(index)
    }

    /// Ids of the indexed types (struct, union, enum, enum64) with this name.
    fn ids_named(&self, name: &str) -> &[u32] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The kind-specific data of a type.
    fn trailing(&self, t: &TypeEntry) -> &[u8] {
        let start = t.trailing as usize;
        let len = t.kind.trailing_len(t.vlen.into());
        self.type_data.get(start..start + len).unwrap_or_default()
    }

    fn trailing_u32(&self, t: &TypeEntry, at: usize) -> Option<u32> {
        read_u32(self.trailing(t), at)
    }

    /// The `btf_member` records of a struct or union.
    fn members(&self, t: &TypeEntry) -> impl Iterator<Item = RawMember> + '_ {
        self.trailing(t).chunks_exact(12).map(|m| RawMember {
            name_off: read_u32(m, 0).unwrap_or_default(),
            type_id: read_u32(m, 4).unwrap_or_default(),
            offset: read_u32(m, 8).unwrap_or_default(),
        })
    }

    /// Decodes the enumerators of an ENUM or ENUM64 type.
    fn enumerators(&self, t: &TypeEntry) -> Vec<(String, u64)> {
        let record_len = if t.kind == Kind::Enum64 { 12 } else { 8 };
        self.trailing(t)
            .chunks_exact(record_len)
            .map(|e| {
                let name = self.str_bytes(read_u32(e, 0).unwrap_or_default());
                let name = String::from_utf8_lossy(name.unwrap_or_default()).into_owned();
                let low = u64::from(read_u32(e, 4).unwrap_or_default());
                let high = if t.kind == Kind::Enum64 {
                    u64::from(read_u32(e, 8).unwrap_or_default())
                } else {
                    0
                };
                (name, high << 32 | low)
            })
            .collect()
    }

    /// The string at `offset` in the string section, without its NUL.
    fn str_bytes(&self, offset: u32) -> Option<&[u8]> {
        str_at(&self.strings, offset)
    }
}

/// The sub-slice `hdr_len + offset .. + len` of `bytes`.
fn section<'a>(
    bytes: &'a [u8],
    section: &'static str,
    hdr_len: u32,
    offset: u32,
    len: u32,
) -> Result<&'a [u8], BtfError> {
    // u64 arithmetic cannot overflow with u32 inputs.
    let start = u64::from(hdr_len) + u64::from(offset);
    let end = start + u64::from(len);
    let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
    range
        .and_then(|(start, end)| bytes.get(start..end))
        .ok_or(BtfError::SectionOutOfBounds {
            section,
            start,
            end,
            len: bytes.len(),
        })
}

/// The NUL-terminated string at `offset` of a string section.
fn str_at(strings: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = strings.get(usize::try_from(offset).ok()?..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

/// Little-endian u32 at byte `at` of `bytes`, if it is in range.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Raw kind numbers, as written by the builder.
    const INT: u32 = 1;
    const PTR: u32 = 2;
    const ARRAY: u32 = 3;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const ENUM: u32 = 6;
    const FWD: u32 = 7;
    const TYPEDEF: u32 = 8;
    const VOLATILE: u32 = 9;
    const CONST: u32 = 10;
    const RESTRICT: u32 = 11;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;
    const VAR: u32 = 14;
    const DATASEC: u32 = 15;
    const FLOAT: u32 = 16;
    const DECL_TAG: u32 = 17;
    const TYPE_TAG: u32 = 18;
    const ENUM64: u32 = 19;

    /// Writes synthetic BTF blobs. Each method appends one type and returns
    /// its id; member offsets are given in bits, as in BTF.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            offset
        }

        fn raw(
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

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.raw(name, INT, false, 0, size, &[size * 8])
        }

        fn int_encoded(&mut self, name: &str, size: u32, bits: u32, bit_offset: u32) -> u32 {
            self.raw(name, INT, false, 0, size, &[bits | bit_offset << 16])
        }

        fn ptr(&mut self, target: u32) -> u32 {
            self.raw("", PTR, false, 0, target, &[])
        }

        fn array(&mut self, elem: u32, index: u32, nelems: u32) -> u32 {
            self.raw("", ARRAY, false, 0, 0, &[elem, index, nelems])
        }

        fn composite(
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

        fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(STRUCT, name, size, false, members)
        }

        fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(UNION, name, size, false, members)
        }

        /// Struct with kind_flag set: offsets are `bitfield_size << 24 | bit_offset`.
        fn struct_kf(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            self.composite(STRUCT, name, size, true, members)
        }

        fn enum32(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
            let mut trailing = Vec::new();
            for &(n, v) in values {
                trailing.extend([self.name(n), v as u32]);
            }
            self.raw(name, ENUM, false, values.len(), 4, &trailing)
        }

        fn enum64(&mut self, name: &str, values: &[(&str, u64)]) -> u32 {
            let mut trailing = Vec::new();
            for &(n, v) in values {
                trailing.extend([self.name(n), v as u32, (v >> 32) as u32]);
            }
            self.raw(name, ENUM64, false, values.len(), 8, &trailing)
        }

        fn modifier(&mut self, kind: u32, name: &str, target: u32) -> u32 {
            self.raw(name, kind, false, 0, target, &[])
        }

        fn typedef(&mut self, name: &str, target: u32) -> u32 {
            self.modifier(TYPEDEF, name, target)
        }

        /// Every kind at least once, so a wrong record length for any of them
        /// shifts all later types and breaks the lookups that follow.
        fn all_kinds(&mut self) {
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

        fn build(&self) -> Vec<u8> {
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
    fn sample_blob() -> Vec<u8> {
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
    fn exercise(btf: &Btf) {
        for name in ["outer", "wrapper", "color", "filler_s", "filler_e64", ""] {
            let _ = btf.enum_values(name);
            for m in ["a", "x", "hdr", "dev", "flag", "name", "o", ""] {
                let _ = btf.member(name, m);
            }
            let _ = btf.member_path(name, &["o", "x"]);
            let _ = btf.member_path(name, &["o", "dev", "x"]);
        }
    }

    #[test]
    fn sample_blob_lookups() {
        let btf = Btf::parse(&sample_blob()).unwrap();
        assert_eq!(
            btf.member("outer", "a"),
            Some(Member { offset: 0, size: 4 })
        );
        assert_eq!(
            btf.member("outer", "hdr"),
            Some(Member {
                offset: 12,
                size: 2
            })
        );
        assert_eq!(
            btf.member("outer", "dev"),
            Some(Member { offset: 8, size: 8 })
        );
        assert_eq!(
            btf.member("outer", "name"),
            Some(Member {
                offset: 24,
                size: 16
            })
        );
        assert_eq!(btf.member("outer", "flag"), None);
        assert_eq!(
            btf.member_path("wrapper", &["o", "hdr"]),
            Some(Member {
                offset: 12,
                size: 2
            })
        );
        exercise(&btf);
    }

    #[test]
    fn enum_lookup() {
        let mut b = Builder::new();
        b.all_kinds();
        // A declaration-only enum comes first and must be skipped.
        b.enum32("skb_drop_reason", &[]);
        b.enum32(
            "skb_drop_reason",
            &[
                ("SKB_NOT_DROPPED_YET", 0),
                ("SKB_CONSUMED", 1),
                ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
                ("NEGATIVE", -2),
            ],
        );
        b.enum32("only_declared", &[]);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(
            btf.enum_values("skb_drop_reason").unwrap(),
            vec![
                ("SKB_NOT_DROPPED_YET".to_string(), 0),
                ("SKB_CONSUMED".to_string(), 1),
                ("SKB_DROP_REASON_NOT_SPECIFIED".to_string(), 2),
                ("NEGATIVE".to_string(), 0xffff_fffe),
            ]
        );
        assert_eq!(btf.enum_values("only_declared"), Some(vec![]));
        assert_eq!(btf.enum_values("filler_e").unwrap().len(), 2);
        assert_eq!(btf.enum_values("missing"), None);
        // A struct of that name is not an enum.
        assert_eq!(btf.enum_values("filler_s"), None);
    }

    #[test]
    fn enum64_lookup() {
        let mut b = Builder::new();
        b.all_kinds();
        b.enum64(
            "big",
            &[
                ("SMALL", 7),
                ("HUGE", 0x1234_5678_9abc_def0),
                ("MAX", u64::MAX),
            ],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(
            btf.enum_values("big").unwrap(),
            vec![
                ("SMALL".to_string(), 7),
                ("HUGE".to_string(), 0x1234_5678_9abc_def0),
                ("MAX".to_string(), u64::MAX),
            ]
        );
        assert_eq!(
            btf.enum_values("filler_e64").unwrap(),
            vec![("FE64_A".to_string(), 1 << 40)]
        );
    }

    #[test]
    fn member_in_nested_anonymous_union_and_struct() {
        let mut b = Builder::new();
        b.all_kinds();
        let u64_t = b.int("long long unsigned int", 8);
        let u32_t = b.int("unsigned int", 4);
        let u16_t = b.int("short unsigned int", 2);
        // struct outer {
        //     u64 first;                          // 0
        //     union {                             // 8
        //         u64 whole;
        //         struct {                        // 8
        //             u32 lo;                     // 8
        //             u16 mid;                    // 12
        //             u16 deep;                   // 14
        //         };
        //     };
        //     u32 last;                           // 16
        // };
        let level2 = b.struct_(
            "",
            8,
            &[("lo", u32_t, 0), ("mid", u16_t, 32), ("deep", u16_t, 48)],
        );
        let level1 = b.union_("", 8, &[("whole", u64_t, 0), ("", level2, 0)]);
        b.struct_(
            "outer",
            24,
            &[("first", u64_t, 0), ("", level1, 64), ("last", u32_t, 128)],
        );
        let btf = Btf::parse(&b.build()).unwrap();

        assert_eq!(
            btf.member("outer", "first"),
            Some(Member { offset: 0, size: 8 })
        );
        assert_eq!(
            btf.member("outer", "whole"),
            Some(Member { offset: 8, size: 8 })
        );
        assert_eq!(
            btf.member("outer", "lo"),
            Some(Member { offset: 8, size: 4 })
        );
        assert_eq!(
            btf.member("outer", "mid"),
            Some(Member {
                offset: 12,
                size: 2
            })
        );
        assert_eq!(
            btf.member("outer", "deep"),
            Some(Member {
                offset: 14,
                size: 2
            })
        );
        assert_eq!(
            btf.member("outer", "last"),
            Some(Member {
                offset: 16,
                size: 4
            })
        );
        assert_eq!(btf.member("outer", "nope"), None);
        assert_eq!(btf.member("outer", ""), None);
        assert_eq!(btf.member("nope", "first"), None);
        // An enum is not a struct.
        assert_eq!(btf.member("filler_e", "FE_A"), None);
    }

    #[test]
    fn member_through_typedef_pointer_and_arrays() {
        let mut b = Builder::new();
        b.all_kinds();
        let char_t = b.int("char", 1);
        let u32_t = b.int("unsigned int", 4);
        let fwd = b.raw("net_device", FWD, false, 0, 0, &[]);
        let tagged = b.modifier(TYPE_TAG, "rcu", fwd);
        let ptr = b.ptr(tagged);
        let dev_p = b.typedef("dev_p", ptr);
        let const_dev_p = b.modifier(CONST, "", dev_p);
        let volatile_dev_p = b.modifier(VOLATILE, "", const_dev_p);
        let name = b.array(char_t, u32_t, 16);
        let matrix_row = b.array(u32_t, u32_t, 3);
        let matrix = b.array(matrix_row, u32_t, 2);
        let typedef_u32 = b.typedef("u32", u32_t);
        let typedef_typedef = b.typedef("__u32_alias", typedef_u32);
        let flex = b.array(u32_t, u32_t, 0);
        b.struct_(
            "holder",
            64,
            &[
                ("dev", volatile_dev_p, 0),
                ("name", name, 64),
                ("matrix", matrix, 192),
                ("alias", typedef_typedef, 384),
                ("flex", flex, 416),
            ],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(
            btf.member("holder", "dev"),
            Some(Member { offset: 0, size: 8 })
        );
        assert_eq!(
            btf.member("holder", "name"),
            Some(Member {
                offset: 8,
                size: 16
            })
        );
        assert_eq!(
            btf.member("holder", "matrix"),
            Some(Member {
                offset: 24,
                size: 24
            })
        );
        assert_eq!(
            btf.member("holder", "alias"),
            Some(Member {
                offset: 48,
                size: 4
            })
        );
        assert_eq!(
            btf.member("holder", "flex"),
            Some(Member {
                offset: 52,
                size: 0
            })
        );
    }

    #[test]
    fn bitfield_members_are_none() {
        let mut b = Builder::new();
        b.all_kinds();
        let u8_t = b.int("unsigned char", 1);
        let u32_t = b.int("unsigned int", 4);
        // kind_flag encoding: bitfield_size << 24 | bit_offset.
        let anon = b.struct_kf(
            "",
            4,
            &[("inner_bits", u8_t, 3 << 24 | 2), ("inner_byte", u8_t, 8)],
        );
        b.struct_kf(
            "flags",
            12,
            &[
                ("cloned", u8_t, 1 << 24),
                ("fclone", u8_t, 2 << 24 | 1),
                ("whole", u8_t, 8), // bitfield_size 0: an ordinary member
                ("", anon, 32),
                ("after", u32_t, 64),
            ],
        );
        // Old encoding (kind_flag clear): the INT type carries the bitfield.
        let three_bits = b.int_encoded("unsigned int", 4, 3, 0);
        let shifted = b.int_encoded("unsigned int", 4, 32, 4);
        b.struct_(
            "legacy",
            8,
            &[
                ("bits", three_bits, 0),
                ("shifted", shifted, 8),
                ("plain", u32_t, 32),
            ],
        );
        // A non-byte-aligned offset is a bitfield whatever the encoding.
        b.struct_("unaligned", 4, &[("odd", u8_t, 3)]);
        let btf = Btf::parse(&b.build()).unwrap();

        assert_eq!(btf.member("flags", "cloned"), None);
        assert_eq!(btf.member("flags", "fclone"), None);
        assert_eq!(btf.member("flags", "inner_bits"), None);
        assert_eq!(
            btf.member("flags", "whole"),
            Some(Member { offset: 1, size: 1 })
        );
        assert_eq!(
            btf.member("flags", "inner_byte"),
            Some(Member { offset: 5, size: 1 })
        );
        assert_eq!(
            btf.member("flags", "after"),
            Some(Member { offset: 8, size: 4 })
        );
        assert_eq!(btf.member("legacy", "bits"), None);
        assert_eq!(btf.member("legacy", "shifted"), None);
        assert_eq!(
            btf.member("legacy", "plain"),
            Some(Member { offset: 4, size: 4 })
        );
        assert_eq!(btf.member("unaligned", "odd"), None);
    }

    #[test]
    fn member_path_across_named_structs() {
        let mut b = Builder::new();
        b.all_kinds();
        let u32_t = b.int("unsigned int", 4);
        let net_fwd = b.raw("net", FWD, false, 0, 0, &[]);
        let net_ptr = b.ptr(net_fwd);
        // typedef struct { struct net *net; } possible_net_t;
        let possible = b.struct_("", 8, &[("net", net_ptr, 0)]);
        let possible_t = b.typedef("possible_net_t", possible);
        // struct ns_common { u32 pad; union { u32 inum; u32 other; }; };
        let inum_union = b.union_("", 4, &[("inum", u32_t, 0), ("other", u32_t, 0)]);
        let ns_common = b.struct_("ns_common", 8, &[("pad", u32_t, 0), ("", inum_union, 32)]);
        b.struct_("net", 24, &[("passive", u32_t, 0), ("ns", ns_common, 128)]);
        // struct sock_common { u32 a; union { u64 b; struct { u32 c; possible_net_t skc_net; }; }; };
        let anon_s = b.struct_("", 16, &[("c", u32_t, 0), ("skc_net", possible_t, 64)]);
        let anon_u = b.union_("", 16, &[("", anon_s, 0)]);
        let sock_common = b.struct_("sock_common", 24, &[("a", u32_t, 0), ("", anon_u, 64)]);
        let const_common = b.modifier(CONST, "", sock_common);
        b.struct_(
            "sock",
            40,
            &[
                ("__sk_common", const_common, 0),
                ("sk_x", u32_t, 192),
                ("ptr", net_ptr, 256),
            ],
        );
        let btf = Btf::parse(&b.build()).unwrap();

        assert_eq!(
            btf.member_path("sock", &["__sk_common", "skc_net", "net"]),
            Some(Member {
                offset: 16,
                size: 8
            })
        );
        assert_eq!(
            btf.member_path("sock", &["__sk_common", "skc_net"]),
            Some(Member {
                offset: 16,
                size: 8
            })
        );
        assert_eq!(
            btf.member_path("sock", &["sk_x"]),
            btf.member("sock", "sk_x")
        );
        assert_eq!(
            btf.member_path("net", &["ns", "inum"]),
            Some(Member {
                offset: 20,
                size: 4
            })
        );
        // Pointers are not followed, unknown steps and empty paths fail.
        assert_eq!(btf.member_path("sock", &["ptr", "passive"]), None);
        assert_eq!(btf.member_path("sock", &["sk_x", "anything"]), None);
        assert_eq!(btf.member_path("sock", &["__sk_common", "nope"]), None);
        assert_eq!(btf.member_path("sock", &[]), None);
    }

    #[test]
    fn duplicate_struct_names_use_first_with_member() {
        let mut b = Builder::new();
        let u32_t = b.int("unsigned int", 4);
        let u64_t = b.int("long unsigned int", 8);
        b.raw("dup", FWD, false, 0, 0, &[]);
        b.struct_("dup", 4, &[("only_first", u32_t, 0)]);
        b.struct_(
            "dup",
            16,
            &[("only_first", u64_t, 64), ("only_second", u64_t, 0)],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(
            btf.member("dup", "only_first"),
            Some(Member { offset: 0, size: 4 })
        );
        assert_eq!(
            btf.member("dup", "only_second"),
            Some(Member { offset: 0, size: 8 })
        );
    }

    #[test]
    fn reference_cycles_do_not_hang() {
        let mut b = Builder::new();
        let u32_t = b.int("unsigned int", 4);
        // Type 2 is a typedef of itself; type 3 a struct whose anonymous
        // members are itself; type 4 an array of itself.
        let self_typedef = b.next_id;
        b.typedef("loop_t", self_typedef);
        let self_struct = b.next_id;
        b.struct_(
            "selfish",
            8,
            &[
                ("", self_struct, 0),
                ("", self_struct, 0),
                ("val", self_typedef, 32),
            ],
        );
        let self_array = b.next_id;
        b.array(self_array, u32_t, 2);
        b.struct_(
            "holder",
            8,
            &[
                ("arr", self_array, 0),
                ("dangling", 999, 32),
                ("void", 0, 0),
            ],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.member("selfish", "missing"), None);
        assert_eq!(btf.member("selfish", "val"), None); // size unresolvable
        assert_eq!(btf.member("holder", "arr"), None);
        assert_eq!(btf.member("holder", "dangling"), None);
        assert_eq!(btf.member("holder", "void"), None);
        assert_eq!(btf.member_path("selfish", &["val", "val"]), None);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let blob = sample_blob();
        Btf::parse(&blob).unwrap();
        for len in 0..blob.len() {
            assert!(
                Btf::parse(&blob[..len]).is_err(),
                "truncated to {len} bytes parsed"
            );
        }
    }

    #[test]
    fn header_errors() {
        let blob = sample_blob();

        let mut bad = blob.clone();
        bad[0] = 0x00;
        assert!(matches!(Btf::parse(&bad), Err(BtfError::BadMagic { .. })));

        let mut swapped = blob.clone();
        swapped.swap(0, 1);
        let err = Btf::parse(&swapped).unwrap_err();
        assert!(matches!(err, BtfError::BigEndian), "{err}");

        let mut version = blob.clone();
        version[2] = 2;
        assert!(matches!(
            Btf::parse(&version),
            Err(BtfError::UnsupportedVersion { found: 2 })
        ));

        let mut hdr_len = blob.clone();
        hdr_len[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(
            Btf::parse(&hdr_len),
            Err(BtfError::BadHeaderLen { .. })
        ));

        let mut huge = blob.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Btf::parse(&huge),
            Err(BtfError::SectionOutOfBounds { .. })
        ));

        // Type section length not a multiple of the record size.
        let mut ragged = blob.clone();
        let type_len = read_u32(&ragged, 12).unwrap();
        ragged[12..16].copy_from_slice(&(type_len - 2).to_le_bytes());
        assert!(matches!(
            Btf::parse(&ragged),
            Err(BtfError::Truncated { .. })
        ));

        // Kind 20 does not exist (yet), so it cannot be skipped.
        let mut unknown = Builder::new();
        unknown.int("int", 4);
        unknown.raw("future", 20, false, 0, 0, &[]);
        let err = Btf::parse(&unknown.build()).unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::UnknownKind {
                    type_id: 2,
                    kind: 20
                }
            ),
            "{err}"
        );

        assert!(matches!(
            Btf::parse(&[]),
            Err(BtfError::TooShort { len: 0 })
        ));
    }

    #[test]
    fn longer_header_and_trailing_bytes_are_accepted() {
        let blob = sample_blob();
        // Insert 8 unknown header bytes (a future header extension) and
        // append garbage after the sections.
        let mut longer = blob[..HEADER_LEN].to_vec();
        longer[4..8].copy_from_slice(&(HEADER_LEN as u32 + 8).to_le_bytes());
        longer.extend([0xaa; 8]);
        longer.extend_from_slice(&blob[HEADER_LEN..]);
        longer.extend([0x55; 5]);
        let btf = Btf::parse(&longer).unwrap();
        assert_eq!(
            btf.member("outer", "hdr"),
            Some(Member {
                offset: 12,
                size: 2
            })
        );
    }

    #[test]
    fn empty_sections_parse() {
        let btf = Btf::parse(&Builder::new().build()).unwrap();
        assert_eq!(btf.member("sk_buff", "dev"), None);
        assert_eq!(btf.enum_values("skb_drop_reason"), None);
    }

    #[test]
    fn random_corruption_never_panics() {
        let blob = sample_blob();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut corrupt = blob.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % corrupt.len();
                corrupt[at] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(&corrupt) {
                exercise(&btf);
            }
        }
    }

    #[test]
    fn from_file_errors_mention_the_path() {
        let missing = Path::new("/nonexistent/netdrop-btf-test");
        let err = Btf::from_file(missing).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/netdrop-btf-test"),
            "{err}"
        );

        let path = std::env::temp_dir().join(format!("netdrop-btf-test-{}", std::process::id()));
        std::fs::write(&path, b"definitely not BTF data, just some text").unwrap();
        let err = Btf::from_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(source.unwrap_or_default().contains("bad magic"), "{err:?}");
    }

    #[test]
    fn real_vmlinux() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("SKIP: no /sys/kernel/btf/vmlinux");
            println!("SKIP: no /sys/kernel/btf/vmlinux");
            return;
        }
        let btf = Btf::from_file(path).unwrap();

        let reasons = btf
            .enum_values("skb_drop_reason")
            .expect("enum skb_drop_reason");
        let has = |name: &str| reasons.iter().any(|(n, _)| n == name);
        assert!(has("SKB_DROP_REASON_NOT_SPECIFIED"), "{reasons:?}");
        assert!(has("SKB_DROP_REASON_NEIGH_QUEUEFULL"), "{reasons:?}");

        let check = |name: &str, path: &[&str], size: Option<u32>| {
            let m = btf.member_path(name, path);
            println!("{name}.{} = {m:?}", path.join("."));
            let m = m.unwrap_or_else(|| panic!("{name}.{} not found", path.join(".")));
            if let Some(size) = size {
                assert_eq!(m.size, size, "{name}.{}", path.join("."));
            }
            m
        };
        let dev = check("sk_buff", &["dev"], Some(8));
        let head = check("sk_buff", &["head"], Some(8));
        assert_ne!(dev.offset, head.offset);
        check("sk_buff", &["network_header"], Some(2));
        check("net_device", &["ifindex"], Some(4));
        check("net_device", &["name"], Some(16));
        check("net_device", &["nd_net", "net"], Some(8));
        check("net", &["ns", "inum"], Some(4));
        check("sock", &["__sk_common", "skc_net", "net"], Some(8));
        check("task_struct", &["tgid"], Some(4));
        // member() and a one-step member_path() agree.
        assert_eq!(btf.member("sk_buff", "dev"), Some(dev));
    }
}
