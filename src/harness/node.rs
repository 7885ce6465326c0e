//! This process's membership of a multi-node run: checked against what the launcher (`mpirun`)
//! started, joined through MPI when the `mpi` feature is built.

use std::sync::Arc;

use super::error::HarnessError;
use crate::distributed::{Collective, launched_processes};

/// This process's place in a multi-node run.
#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    /// This process's rank among all (0 alone).
    pub(super) rank: usize,
    /// Its rank among the processes of its machine: the GPU it uses.
    pub(super) local_rank: usize,
    /// How it exchanges gradients and weights with the others (none alone).
    pub(super) collective: Option<Arc<dyn Collective>>,
    /// Keeps MPI running while the session lives.
    #[cfg(feature = "mpi")]
    _mpi: Option<Arc<crate::distributed::mpi::MpiNode>>,
}

impl Node {
    /// Joins the multi-node run `--nodes` asks for, checking that the launcher agrees.
    pub(super) fn join(nodes: usize, devices: usize) -> Result<Self, HarnessError> {
        if nodes == 0 || devices == 0 {
            return Err(HarnessError::Invalid(
                "--nodes and --devices must be at least 1".to_string(),
            ));
        }
        let launched = launched_processes().unwrap_or(1);
        if nodes == 1 {
            if launched > 1 {
                return Err(HarnessError::Invalid(format!(
                    "this process is one of {launched} started by mpirun, but --nodes is 1: pass \
                     --nodes {launched} (otherwise each process would train alone)"
                )));
            }
            return Ok(Self::default());
        }
        if devices > 1 {
            return Err(HarnessError::Invalid(format!(
                "--nodes {nodes} with --devices {devices}: start one process per device instead \
                 (mpirun -np {total} … --nodes {total}); each process uses its machine's GPU \
                 number <local rank>",
                total = nodes * devices
            )));
        }
        Self::join_mpi(nodes, launched)
    }

    #[cfg(feature = "mpi")]
    fn join_mpi(nodes: usize, launched: usize) -> Result<Self, HarnessError> {
        if launched != nodes {
            return Err(HarnessError::Invalid(if launched == 1 {
                format!(
                    "--nodes {nodes}: start the processes with MPI, e.g. `mpirun -np {nodes} \
                     <this command>` (see README, \"Several devices and machines\")"
                )
            } else {
                format!("mpirun started {launched} processes, but --nodes is {nodes}")
            }));
        }
        let mpi = crate::distributed::mpi::MpiNode::join().map_err(HarnessError::Invalid)?;
        Ok(Self {
            rank: mpi.rank(),
            local_rank: mpi.local_rank(),
            collective: Some(Arc::new(mpi.collective())),
            _mpi: Some(Arc::new(mpi)),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn join_mpi(nodes: usize, _launched: usize) -> Result<Self, HarnessError> {
        Err(HarnessError::Invalid(format!(
            "--nodes {nodes} needs MPI, and this program was built without it: build with \
             `--features mpi` (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin \
             libclang-dev)"
        )))
    }
}
