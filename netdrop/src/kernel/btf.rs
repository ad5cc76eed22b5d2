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
//! Kernel-module BTF (`/sys/kernel/btf/<module>`) is *split* BTF: its type
//! ids continue after its base's (vmlinux's) last one, and its string
//! offsets past the base's string section refer to its own. [`Btf::add_split`]
//! appends one module's types and strings to a parsed vmlinux, so lookups
//! see both (vmlinux's types first, a name found in both gives vmlinux's).
//!
//! What this module deliberately does not do:
//!
//! * Big-endian BTF is not supported: a byte-swapped magic is an error.
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
    #[error("split BTF on top of split BTF: only one module's BTF can be added to vmlinux's")]
    SplitOnSplit,
    #[error("split BTF does not fit: the combined type or string section passes 4 GiB")]
    SplitTooLarge,
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
    /// Whether a module's split BTF was added ([`Btf::add_split`]): a second
    /// one would be numbered after the first, which is not what it refers to.
    split: bool,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .field("indexed_names", &self.by_name.len())
            .field("split", &self.split)
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
        let mut btf = Btf {
            types: Vec::new(),
            type_data: Vec::new(),
            strings: Vec::new(),
            by_name: HashMap::new(),
            split: false,
        };
        btf.append(bytes)?;
        Ok(btf)
    }

    /// Reads a kernel module's split BTF (e.g. `/sys/kernel/btf/nf_conntrack`,
    /// whose base is this vmlinux BTF) and adds its types, see [`Btf::add_split`].
    pub fn add_split_file(&mut self, path: &Path) -> Result<(), BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.add_split(&bytes).map_err(|e| BtfError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Adds split BTF whose base is `self` (a module's, on top of vmlinux's):
    /// its first type is id `base types + 1`, and a string offset `o` at or
    /// past the base's string section length is `o - that length` in its own
    /// string section, exactly as the kernel numbers them. Only one split can
    /// be added. On error `self` is left as it was.
    pub fn add_split(&mut self, bytes: &[u8]) -> Result<(), BtfError> {
        if self.split {
            return Err(BtfError::SplitOnSplit);
        }
        self.append(bytes)?;
        self.split = true;
        Ok(())
    }

    /// Parses `bytes` and appends its types and strings: ids continue after
    /// the types already there, string offsets after the strings (both empty
    /// for base BTF). Nothing is changed on error.
    fn append(&mut self, bytes: &[u8]) -> Result<(), BtfError> {
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

        // Where this BTF's types and strings start in the combined sections.
        let data_base = self.type_data.len();
        let str_base = self.strings.len();
        if u32::try_from(data_base + type_data.len()).is_err()
            || u32::try_from(str_base + strings.len()).is_err()
        {
            return Err(BtfError::SplitTooLarge);
        }
        // A name: the base's below `str_base`, this BTF's own from there.
        let name_at = |off: u32| match (off as usize).checked_sub(str_base) {
            Some(own) => str_at(strings, u32::try_from(own).ok()?),
            None => str_at(&self.strings, off),
        };

        // Real vmlinux types average about 40 bytes each.
        let mut types = Vec::with_capacity(type_data.len() / 40);
        let mut names: Vec<(&str, u32)> = Vec::new();
        let mut pos = 0usize;
        while pos < type_data.len() {
            // The type section is at most u32::MAX bytes with >= 12 bytes
            // per type, so ids always fit in a u32.
            let type_id = u32::try_from(self.types.len() + types.len() + 1).unwrap_or(u32::MAX);
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
                // Checked above: the combined section fits in a u32.
                trailing: u32::try_from(data_base + trailing).unwrap_or(u32::MAX),
            });

            if (kind.is_composite()
                || kind.is_enum()
                || kind == Kind::Typedef
                || kind == Kind::Func)
                && name_off != 0
            {
                // Names that are not valid strings are left out of the
                // index: such types cannot be looked up by name.
                if let Some(name) = name_at(name_off).and_then(|b| std::str::from_utf8(b).ok())
                    && !name.is_empty()
                    && (kind != Kind::Typedef || name.starts_with(TRACE_TYPEDEF))
                    && (kind != Kind::Func || name.starts_with(TRACE_FUNC))
                {
                    names.push((name, type_id));
                }
            }
            pos = end;
        }

        for (name, type_id) in names {
            match self.by_name.get_mut(name) {
                Some(ids) => ids.push(type_id),
                None => {
                    self.by_name.insert(name.into(), vec![type_id]);
                }
            }
        }
        self.types.extend(types);
        self.type_data.extend_from_slice(type_data);
        self.strings.extend_from_slice(strings);
        Ok(())
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

mod lookup;
mod trace;
pub use trace::Param;

#[cfg(test)]
mod tests;
