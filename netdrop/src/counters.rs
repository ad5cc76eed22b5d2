//! Reads the kernel's exact per-CPU counters.

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use netdrop_common::{MAX_REASONS, names, stat};

use crate::summary::Counts;

pub struct CounterMaps {
    drops: PerCpuArray<MapData, u64>,
    lost: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, u64>,
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
            stats: take(ebpf, names::STATS)?,
        })
    }

    pub fn read(&self) -> Result<Counts> {
        Ok(Counts {
            drops: sum_all(&self.drops, MAX_REASONS)?,
            lost: sum_all(&self.lost, MAX_REASONS)?,
            stats: sum_all(&self.stats, stat::COUNT)?,
        })
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
