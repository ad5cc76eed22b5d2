//! Tracepoint prototypes: which argument of a raw tracepoint is which.

use super::*;

/// One argument of a tracepoint's prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Empty when only the unnamed typedef was found.
    pub name: String,
    /// E.g. `struct sk_buff *` (see `Btf::describe`).
    pub ty: String,
}

impl Btf {
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
}
