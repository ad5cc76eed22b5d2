//! Neighbour states (`NUD_*`, include/uapi/linux/neighbour.h: user ABI, stable).

pub const NONE: u32 = 0x00;
pub const INCOMPLETE: u32 = 0x01;
pub const REACHABLE: u32 = 0x02;
pub const STALE: u32 = 0x04;
pub const DELAY: u32 = 0x08;
pub const PROBE: u32 = 0x10;
pub const FAILED: u32 = 0x20;
pub const NOARP: u32 = 0x40;
pub const PERMANENT: u32 = 0x80;
/// States with a usable link-layer address (include/net/neighbour.h).
pub const VALID: u32 = PERMANENT | NOARP | REACHABLE | PROBE | STALE | DELAY;
/// [`crate::RawNeighStateEvent::old_state`] when the hook cannot tell it
/// (neigh_timer_handler fires after the state changed).
pub const UNKNOWN: u32 = u32::MAX;

/// Which neigh_update calls are sent as state events: a real change
/// (`old != new`) of an entry that resolves (NOARP/PERMANENT ones never do)
/// that either
/// - ends a resolution: any valid state reached from NONE or INCOMPLETE
///   (an ARP/NA reply gives REACHABLE; a peer's own request or an
///   unsolicited reply gives STALE), or
/// - gives a verdict on reachability: REACHABLE (from DELAY/PROBE/STALE)
///   or FAILED.
///
/// Latency of a resolution = CREATED → the first following event for the
/// same (device, address) whose new state is valid or FAILED.
pub const fn is_resolution_update(old: u32, new: u32) -> bool {
    if old == new || old & (NOARP | PERMANENT) != 0 {
        return false;
    }
    let resolved = (old == NONE || old & INCOMPLETE != 0) && new & VALID != 0;
    resolved || new & (REACHABLE | FAILED) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_updates() {
        // Resolution ends: any valid state from NONE or INCOMPLETE.
        for new in [REACHABLE, STALE, DELAY, PROBE] {
            assert!(is_resolution_update(INCOMPLETE, new), "{new:#x}");
            assert!(is_resolution_update(NONE, new), "{new:#x}");
        }
        // Reachability verdicts from any (resolving) state.
        assert!(is_resolution_update(INCOMPLETE, FAILED));
        assert!(is_resolution_update(PROBE, FAILED));
        assert!(is_resolution_update(DELAY, REACHABLE));
        assert!(is_resolution_update(STALE, REACHABLE));
        // Not sent: no change, ageing, restarts, entries that never resolve.
        assert!(!is_resolution_update(REACHABLE, REACHABLE));
        assert!(!is_resolution_update(REACHABLE, STALE));
        assert!(!is_resolution_update(STALE, DELAY));
        assert!(!is_resolution_update(FAILED, INCOMPLETE));
        assert!(!is_resolution_update(NONE, INCOMPLETE));
        assert!(!is_resolution_update(PERMANENT, REACHABLE));
        assert!(!is_resolution_update(NOARP, FAILED));
    }
}
