//! Every drop no other cause claims, still named by its kernel reason.

use super::{Cause, CauseSpec};

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
    advice: "",
};
