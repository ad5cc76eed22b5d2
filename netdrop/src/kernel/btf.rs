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

/// The prefix of the typedefs that give tracepoints' prototypes (the only
/// typedefs indexed by name).
const TRACE_TYPEDEF: &str = "btf_trace_";
/// The prefix of the tracepoints' BPF probe stubs (the only functions indexed by name).
const TRACE_FUNC: &str = "__bpf_trace_";

/// One argument of a tracepoint's prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Empty when only the unnamed typedef was found.
    pub name: String,
    /// E.g. `struct sk_buff *` (see `Btf::describe`).
    pub ty: String,
}

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
    /// types, the `btf_trace_*` TYPEDEFs and the `__bpf_trace_*` FUNCs, the
    /// only ones looked up by name.
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

            if (kind.is_composite()
                || kind.is_enum()
                || kind == Kind::Typedef
                || kind == Kind::Func)
                && name_off != 0
            {
                // Names that are not valid strings are left out of the
                // index: such types cannot be looked up by name.
                if let Some(name) =
                    str_at(strings, name_off).and_then(|b| std::str::from_utf8(b).ok())
                    && !name.is_empty()
                    && (kind != Kind::Typedef || name.starts_with(TRACE_TYPEDEF))
                    && (kind != Kind::Func || name.starts_with(TRACE_FUNC))
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

    /// The arguments of tracepoint `event` (its `TP_PROTO`, which raw
    /// tracepoint programs receive as `u64 args[]`, in this order).
    ///
    /// The kernel declares `typedef void (*btf_trace_<event>)(void *__data,
    /// <TP_PROTO>)` with unnamed parameters, and defines the probe stub
    /// `__bpf_trace_<event>(void *__data, <TP_PROTO>)` with named ones: names
    /// come from the stub when its BTF is there, types from either.
    pub fn tracepoint_args(&self, event: &str) -> Option<Vec<Param>> {
        let named = |prefix: &str, kind: Kind| {
            let name = format!("{prefix}{event}");
            self.ids_named(&name)
                .iter()
                .copied()
                .find(|&id| self.ty(id).is_some_and(|t| t.kind == kind))
        };
        let proto = |id: u32, through: Kind| {
            let (_, t) = self.skip_modifiers(self.ty(id)?.size_or_type)?;
            let t = if through == Kind::Ptr {
                if t.kind != Kind::Ptr {
                    return None;
                }
                self.skip_modifiers(t.size_or_type)?.1
            } else {
                t
            };
            (t.kind == Kind::FuncProto).then_some(t)
        };
        let t = named(TRACE_FUNC, Kind::Func)
            .and_then(|id| proto(id, Kind::Func))
            .or_else(|| named(TRACE_TYPEDEF, Kind::Typedef).and_then(|id| proto(id, Kind::Ptr)))?;
        let params: Vec<Param> = self
            .trailing(t)
            .chunks_exact(8)
            .map(|p| {
                let name = self.str_bytes(read_u32(p, 0).unwrap_or_default());
                Param {
                    name: String::from_utf8_lossy(name.unwrap_or_default()).into_owned(),
                    ty: self.describe(read_u32(p, 4).unwrap_or_default(), 0),
                }
            })
            .collect();
        // The first parameter is the probe's own data pointer, not an argument.
        params.split_first().map(|(_, args)| args.to_vec())
    }

    /// A short C spelling of a type, enough to recognise an argument:
    /// `struct sk_buff *`, `enum skb_drop_reason`, `void *`; `?` otherwise.
    fn describe(&self, type_id: u32, depth: usize) -> String {
        let Some((_, t)) = self.skip_modifiers(type_id) else {
            return if type_id == 0 {
                "void".into()
            } else {
                "?".into()
            };
        };
        // The type's name_off is the first word of its record, which ends
        // where its kind-specific data starts.
        let name = |t: &TypeEntry| {
            let at = (t.trailing as usize).saturating_sub(TYPE_HEADER_LEN);
            let off = read_u32(&self.type_data, at).unwrap_or(0);
            String::from_utf8_lossy(self.str_bytes(off).unwrap_or_default()).into_owned()
        };
        match t.kind {
            Kind::Ptr if depth < MAX_TYPE_CHAIN => {
                format!("{} *", self.describe(t.size_or_type, depth + 1))
            }
            Kind::Struct => format!("struct {}", name(t)),
            Kind::Union => format!("union {}", name(t)),
            Kind::Enum | Kind::Enum64 => format!("enum {}", name(t)),
            Kind::Int => name(t),
            _ => "?".into(),
        }
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
mod tests;
