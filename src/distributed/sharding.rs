//! How a training set is divided among data-parallel replicas so that a step on R replicas with
//! batch B sees exactly the items of one step on one replica with batch R·B.

use std::sync::Arc;

use burn::data::dataset::Dataset;

/// Where one process sits among all replicas of a data-parallel run: `nodes` processes, each
/// driving `devices` local devices (replica `node_rank · devices + d` is device `d` of node
/// `node_rank`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaLayout {
    /// Processes (machines) taking part.
    pub nodes: usize,
    /// This process's place among them, `0..nodes`.
    pub node_rank: usize,
    /// Devices each process trains on.
    pub devices: usize,
}

impl ReplicaLayout {
    /// One process on one device.
    pub const SINGLE: Self = Self {
        nodes: 1,
        node_rank: 0,
        devices: 1,
    };

    /// All replicas of the run: `nodes · devices`.
    pub fn replicas(&self) -> usize {
        self.nodes * self.devices
    }
}

/// The part of a training set that one process trains on, laid out for Burn's DDP.
///
/// Replica `g` of `R` trains on items `g, g + R, g + 2R, …` of `inner` (truncated to a multiple
/// of `R`, so that every replica takes the same number of steps — Burn's DDP hangs otherwise).
/// Burn's DDP cuts a data loader into contiguous slices, one per local device; this dataset
/// therefore lists this node's devices' items one after the other. Without shuffling, step `k`
/// of all replicas together covers items `k·R·B .. (k+1)·R·B`: the `k`-th batch of a single
/// replica with batch size `R·B`.
pub struct ReplicaShards<I> {
    inner: Arc<dyn Dataset<I>>,
    layout: ReplicaLayout,
    per_replica: usize,
}

impl<I> ReplicaShards<I> {
    /// This node's shards of `inner`.
    ///
    /// # Panics
    /// If `layout` has no replicas or `node_rank` is out of range (the harness validates both).
    pub fn new(inner: Arc<dyn Dataset<I>>, layout: ReplicaLayout) -> Self {
        assert!(
            layout.devices > 0 && layout.node_rank < layout.nodes,
            "invalid replica layout {layout:?}"
        );
        let per_replica = inner.len() / layout.replicas();
        Self {
            inner,
            layout,
            per_replica,
        }
    }

    /// Items each replica trains on per epoch.
    pub fn per_replica(&self) -> usize {
        self.per_replica
    }

    /// Items of `inner` no replica sees (fewer than the number of replicas).
    pub fn dropped(&self) -> usize {
        self.inner.len() - self.per_replica * self.layout.replicas()
    }

    /// The index in `inner` of this dataset's `index`-th item.
    fn source_index(&self, index: usize) -> usize {
        let device = index / self.per_replica;
        let position = index % self.per_replica;
        let replica = device * self.layout.nodes + self.layout.node_rank;
        position * self.layout.replicas() + replica
    }
}

impl<I: Send + Sync> Dataset<I> for ReplicaShards<I> {
    fn get(&self, index: usize) -> Option<I> {
        if index >= self.len() {
            return None;
        }
        self.inner.get(self.source_index(index))
    }

    fn len(&self) -> usize {
        self.per_replica * self.layout.devices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;

    fn items(dataset: &dyn Dataset<usize>) -> Vec<usize> {
        (0..dataset.len())
            .map(|i| dataset.get(i).unwrap())
            .collect()
    }

    fn numbers(n: usize) -> Arc<dyn Dataset<usize>> {
        Arc::new(InMemDataset::new((0..n).collect()))
    }

    #[test]
    fn one_replica_is_the_whole_set() {
        let shards = ReplicaShards::new(numbers(7), ReplicaLayout::SINGLE);
        assert_eq!(items(&shards), (0..7).collect::<Vec<_>>());
        assert_eq!(shards.dropped(), 0);
    }

    #[test]
    fn local_devices_get_strided_items_one_block_after_the_other() {
        let layout = ReplicaLayout {
            nodes: 1,
            node_rank: 0,
            devices: 2,
        };
        let shards = ReplicaShards::new(numbers(9), layout);
        // Device 0 takes 0, 2, 4, 6; device 1 takes 1, 3, 5, 7; item 8 is dropped.
        assert_eq!(items(&shards), vec![0, 2, 4, 6, 1, 3, 5, 7]);
        assert_eq!(shards.dropped(), 1);
        assert_eq!(shards.get(8), None);
    }

    #[test]
    fn every_item_is_seen_by_exactly_one_replica_of_all_nodes() {
        let (nodes, devices, n) = (3, 2, 50);
        let mut seen: Vec<usize> = Vec::new();
        for node_rank in 0..nodes {
            let layout = ReplicaLayout {
                nodes,
                node_rank,
                devices,
            };
            let shards = ReplicaShards::new(numbers(n), layout);
            assert_eq!(shards.len(), 8 * devices);
            seen.extend(items(&shards));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..48).collect::<Vec<_>>());
    }

    #[test]
    fn a_step_of_all_replicas_is_one_batch_of_the_doubled_batch() {
        let (nodes, devices, batch) = (2, 2, 3);
        let n = 4 * 3 * 5;
        for step in 0..5 {
            let mut step_items = Vec::new();
            for node_rank in 0..nodes {
                let layout = ReplicaLayout {
                    nodes,
                    node_rank,
                    devices,
                };
                let shards = ReplicaShards::new(numbers(n), layout);
                let shard = items(&shards);
                // Burn's DDP: device d reads the d-th contiguous slice.
                for d in 0..devices {
                    let slice = &shard[d * shards.per_replica()..(d + 1) * shards.per_replica()];
                    step_items.extend_from_slice(&slice[step * batch..(step + 1) * batch]);
                }
            }
            step_items.sort_unstable();
            let expected: Vec<usize> = (step * 12..(step + 1) * 12).collect();
            assert_eq!(step_items, expected, "step {step}");
        }
    }
}
