//! The [`Collective`] of multi-node training over MPI (Open MPI or MPICH), for processes
//! started by `mpirun`. Needs the `mpi` cargo feature.

use std::fmt;

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};

use super::Collective;

/// This process's membership of an MPI job; MPI is shut down when the last clone is dropped.
pub struct MpiNode {
    _universe: Universe,
    rank: usize,
    size: usize,
    local_rank: usize,
}

impl fmt::Debug for MpiNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiNode")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("local_rank", &self.local_rank)
            .finish()
    }
}

impl MpiNode {
    /// Joins the MPI job this process was started in (a job of one process when not started
    /// by `mpirun`).
    ///
    /// # Errors
    /// If MPI was already initialised in this process, or cannot be.
    pub fn join() -> Result<Self, String> {
        if mpi::environment::is_initialized() {
            return Err("MPI is already initialised in this process".to_string());
        }
        // Only the training thread talks to MPI.
        let (universe, _threading) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| "MPI could not be initialised".to_string())?;
        let world = universe.world();
        Ok(Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            local_rank: local_rank(),
            _universe: universe,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Processes in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// This process's rank among the processes on its machine (picks its GPU).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The collective operations over all processes of the job.
    pub fn collective(&self) -> MpiCollective {
        MpiCollective {
            rank: self.rank,
            size: self.size,
        }
    }
}

/// The rank on this machine, as the launcher tells it (Open MPI, MPICH/Hydra, Slurm).
fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok()?.parse().ok())
    .unwrap_or(0)
}

/// [`Collective`] over `MPI_COMM_WORLD`.
#[derive(Clone, Copy, Debug)]
pub struct MpiCollective {
    rank: usize,
    size: usize,
}

impl Collective for MpiCollective {
    fn size(&self) -> usize {
        self.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn all_reduce_sum(&self, buffer: &mut [f32]) {
        let world = SimpleCommunicator::world();
        let send = buffer.to_vec();
        world.all_reduce_into(&send[..], buffer, SystemOperation::sum());
    }

    fn broadcast_from_root(&self, buffer: &mut [f32]) {
        SimpleCommunicator::world()
            .process_at_rank(0)
            .broadcast_into(buffer);
    }

    fn all_gather(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size];
        SimpleCommunicator::world().all_gather_into(&value, &mut all[..]);
        all
    }
}
