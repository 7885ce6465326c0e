//! Where a session's replicas train and which share of the training data each one sees.

use std::sync::Arc;

use burn::data::dataset::Dataset;

use super::Session;
use crate::backend::BackendKind;
use crate::distributed::{ReplicaLayout, ReplicaShards};
use crate::harness::error::HarnessError;

/// Where a process trains, for [`on_backend`](crate::tasks::on_backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The backend.
    pub backend: BackendKind,
    /// How many local devices.
    pub devices: usize,
    /// The first GPU's number on this machine (a multi-node process's local rank).
    pub first_device: usize,
}

impl Session {
    /// Where this process trains: backend, local devices, and which GPU of the machine.
    pub fn placement(&self) -> Placement {
        Placement {
            backend: self.settings.backend,
            devices: self.settings.devices,
            first_device: self.node.local_rank,
        }
    }

    /// Where this process's replicas sit among all of the run.
    pub fn layout(&self) -> ReplicaLayout {
        ReplicaLayout {
            nodes: self.settings.nodes,
            node_rank: self.node.rank,
            devices: self.settings.devices,
        }
    }

    /// This process's share of a training set ([`ReplicaShards`]): all of it for a single
    /// replica.
    ///
    /// # Errors
    /// If the set has fewer items than there are replicas.
    pub fn shard<I: Send + Sync + 'static>(
        &self,
        data: Arc<dyn Dataset<I>>,
    ) -> Result<Arc<dyn Dataset<I>>, HarnessError> {
        let replicas = self.settings.replicas();
        if replicas == 1 {
            return Ok(data);
        }
        let shards = ReplicaShards::new(data, self.layout());
        if shards.per_replica() == 0 {
            return Err(HarnessError::Invalid(format!(
                "the training set is too small for {replicas} replicas"
            )));
        }
        let dropped = if shards.dropped() > 0 {
            format!(
                " ({} left out so that all take the same number of steps)",
                shards.dropped()
            )
        } else {
            String::new()
        };
        self.say(format!(
            "{replicas} replicas, each training on {} items per epoch{dropped}",
            shards.per_replica()
        ));
        Ok(Arc::new(shards))
    }
}
