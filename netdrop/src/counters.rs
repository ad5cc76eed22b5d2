//! Reads the kernel's exact per-CPU counters.

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray},
};
use netdrop_common::{MAX_REASONS, names, stat};

use crate::summary::Counts;

pub struct CounterMaps {
    drops: PerCpuArray<MapData, u64>,
    lost: PerCpuArray<MapData, u64>,
    sent: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, u64>,
    /// The event limit's window (`WINDOW[0]`), advanced by [`CounterMaps::next_window`].
    window: Array<MapData, u64>,
    window_no: u64,
}

fn take(ebpf: &mut Ebpf, name: &str) -> Result<PerCpuArray<MapData, u64>> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    PerCpuArray::try_from(map).with_context(|| format!("map {name}"))
}

impl CounterMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<CounterMaps> {
        Ok(CounterMaps {
            drops: take(ebpf, names::DROP_COUNTS)?,
            lost: take(ebpf, names::LOST_COUNTS)?,
            sent: take(ebpf, names::EVENT_COUNTS)?,
            stats: take(ebpf, names::STATS)?,
            window: Array::try_from(
                ebpf.take_map(names::WINDOW)
                    .context("map WINDOW missing from the eBPF object")?,
            )?,
            window_no: 0,
        })
    }

    /// Reads every counter. Events sent and lost are read before the drops, so
    /// that drops ≥ sent + lost holds in every read (all only grow): what is
    /// left, held back by the event limit, is never negative.
    pub fn read(&self) -> Result<Counts> {
        let sent = sum_all(&self.sent, MAX_REASONS)?;
        let lost = sum_all(&self.lost, MAX_REASONS)?;
        let stats = sum_all(&self.stats, stat::COUNT)?;
        Ok(Counts {
            drops: sum_all(&self.drops, MAX_REASONS)?,
            lost,
            sent,
            stats,
        })
    }

    /// Starts the next window of the kernel's event limit (call every second):
    /// each reason may then send `--events-per-sec` events again.
    pub fn next_window(&mut self) -> Result<()> {
        self.window_no += 1;
        self.window
            .set(0, self.window_no, 0)
            .context("advancing the event limit's window")
    }
}

fn sum_all(map: &PerCpuArray<MapData, u64>, len: u32) -> Result<Vec<u64>> {
    (0..len)
        .map(|i| {
            Ok(map
                .get(&i, 0)
                .context("reading a per-CPU counter")?
                .iter()
                .sum())
        })
        .collect()
}
