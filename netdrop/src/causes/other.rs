//! Every drop no other cause claims, still named by its kernel reason.

use super::{Cause, CauseSpec, GroupBy};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::Other,
    name: "other",
    meaning: "other kernel drop reasons",
    reasons: &[],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    counters: &[],
    knobs: &[],
    group_by: GroupBy::Bespoke,
    advise: None,
};
