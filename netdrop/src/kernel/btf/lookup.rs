//! Name lookups: enumerators, and struct members by path (offset and size).

use super::*;

impl Btf {
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

    /// Size in bytes of the struct or union named `name` (the first complete
    /// one: forward declarations are skipped).
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        self.ids_named(name).iter().find_map(|&id| {
            let t = self.ty(id)?;
            (t.kind.is_composite() && t.size_or_type != 0).then_some(t.size_or_type)
        })
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
}
