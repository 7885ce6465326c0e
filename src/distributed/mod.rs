//! Data-parallel training on several devices and several machines.
//!
//! * **Several devices of one process** (`--devices N`): Burn's own DDP,
//!   `LearningStrategy::DistributedDataParallel` (burn-collective), one model replica per device,
//!   gradients averaged after every step.
//! * **Several processes or machines** (`--nodes N`, started by `mpirun`): the Horovod design,
//!   because Burn 0.19.1's multi-node collective cannot be used (its global all-reduce hangs from
//!   the second step on: `burn-collective` `global/node/sync.rs` clears a copy of its list of
//!   synced nodes). [`DataParallel`] wraps any Burn optimizer: before each step it averages every
//!   gradient across processes through a [`Collective`] (MPI in the `mpi` module, with the
//!   `mpi` cargo feature), pairing tensors by the module's visiting order rather than by their random ids;
//!   [`broadcast_model`] gives every process node 0's initial weights; [`ReplicaShards`] gives
//!   each replica its share of the data.
//!
//! Either way every replica's optimizer sees the same averaged gradient, so RAdam's θ, m_t and
//! v_t stay identical on all replicas.

pub mod flat;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod sharding;

use std::fmt;
use std::sync::Arc;

use burn::module::{AutodiffModule, Module};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};

pub use flat::{
    FlatGradients, FlatTensors, flatten_gradients, flatten_module, load_flat, unflatten_gradients,
};
pub use sharding::{ReplicaLayout, ReplicaShards};

/// The collective operations multi-process training needs, over all processes of the run.
///
/// Every process must call the same operations in the same order with buffers of the same
/// length (the usual contract of MPI collectives).
pub trait Collective: Send + Sync {
    /// Processes taking part.
    fn size(&self) -> usize;
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// Replaces `buffer` on every process by the element-wise sum over all processes.
    fn all_reduce_sum(&self, buffer: &mut [f32]);
    /// Replaces `buffer` on every process by rank 0's.
    fn broadcast_from_root(&self, buffer: &mut [f32]);
    /// `value` of every process, indexed by rank.
    fn all_gather(&self, value: u64) -> Vec<u64>;
}

impl fmt::Debug for dyn Collective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Collective {{ rank: {}, size: {} }}",
            self.rank(),
            self.size()
        )
    }
}

/// Why processes cannot train together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoherent(pub String);

impl fmt::Display for Incoherent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Incoherent {}

/// Checks that every process has the same `fingerprint` (of its settings) and the same model
/// layout, then gives every process the initial weights of process 0.
///
/// # Errors
/// Naming the first process whose settings or model differ from process 0's. Every process
/// sees the same gathered values, so all of them fail together instead of hanging.
pub fn broadcast_model<B: Backend, M: Module<B>>(
    model: M,
    fingerprint: u64,
    collective: &dyn Collective,
) -> Result<M, Incoherent> {
    let layout = flatten_module(&model, |_| false).sizes;
    let fingerprints = collective.all_gather(fingerprint);
    let layouts = collective.all_gather(layout_fingerprint(&layout));
    for rank in 1..collective.size() {
        if fingerprints[rank] != fingerprints[0] {
            return Err(Incoherent(format!(
                "node {rank} was started with different settings from node 0 (every node needs \
                 the same flags, apart from --data-dir and --artifact-dir)"
            )));
        }
        if layouts[rank] != layouts[0] {
            return Err(Incoherent(format!(
                "node {rank} built a different model from node 0 (same flags, same data and \
                 vocabulary are needed on every node)"
            )));
        }
    }
    let mut values = flatten_module(&model, |_| true).values;
    collective.broadcast_from_root(&mut values);
    Ok(load_flat(model, &values, |_| true))
}

/// FNV-1a over the tensor sizes: equal for equal model layouts.
fn layout_fingerprint(sizes: &[usize]) -> u64 {
    fingerprint_bytes(
        &sizes
            .iter()
            .flat_map(|size| (*size as u64).to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

/// Whether this process was started by an MPI launcher as one of several processes, and how
/// many (without initialising MPI).
pub fn launched_processes() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
}

/// FNV-1a, 64 bit: a fingerprint of settings that every process computes the same way.
pub fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Any Burn optimizer, made data-parallel across processes: each step's gradients are averaged
/// over all processes (the same for all, so every replica takes the same step), and tensors
/// that have no gradient anywhere — running statistics such as batch norm's — follow process 0
/// after the step, as PyTorch's DDP broadcasts its buffers.
///
/// Without a collective (one process) it is the inner optimizer, unchanged.
#[derive(Clone)]
pub struct DataParallel<O> {
    inner: O,
    collective: Option<Arc<dyn Collective>>,
}

impl<O> DataParallel<O> {
    /// `inner`, averaging gradients through `collective` (`None`: a single process).
    pub fn new(inner: O, collective: Option<Arc<dyn Collective>>) -> Self {
        Self { inner, collective }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<M, B, O> Optimizer<M, B> for DataParallel<O>
where
    M: AutodiffModule<B>,
    B: AutodiffBackend,
    O: Optimizer<M, B>,
{
    type Record = O::Record;

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        let Some(collective) = &self.collective else {
            return self.inner.step(lr, module, grads);
        };
        let flat = flatten_gradients(&module, &grads);
        let tensors = flat.present.len();
        // One all-reduce per step: how many processes have each gradient, then the sums.
        let mut buffer: Vec<f32> = flat
            .present
            .iter()
            .map(|&present| if present { 1.0 } else { 0.0 })
            .collect();
        buffer.extend_from_slice(&flat.values);
        collective.all_reduce_sum(&mut buffer);
        let present: Vec<bool> = buffer[..tensors].iter().map(|&count| count > 0.0).collect();
        let processes = collective.size() as f32;
        for value in &mut buffer[tensors..] {
            *value /= processes;
        }
        let grads = unflatten_gradients(&module, grads, &buffer[tensors..], &present);
        let module = self.inner.step(lr, module, grads);

        // Running statistics keep this step's update pending per thread until something syncs
        // them; turning a clone into a record does (clones share the statistics).
        drop(module.clone().into_record());
        let without_gradient = |index: usize| !present[index];
        let mut buffers = flatten_module(&module, without_gradient).values;
        if buffers.is_empty() {
            return module;
        }
        collective.broadcast_from_root(&mut buffers);
        load_flat(module, &buffers, without_gradient)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
            collective: self.collective,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::NdArrayBackend;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::SgdConfig;
    use burn::tensor::Tensor;
    use std::sync::{Barrier, Mutex};

    type B = NdArrayBackend;

    /// Processes simulated by threads: each operation waits for all, then combines.
    struct ThreadCollective {
        rank: usize,
        shared: Arc<Shared>,
    }

    struct Shared {
        size: usize,
        barrier: Barrier,
        slots: Mutex<Vec<Vec<f32>>>,
        gathered: Mutex<Vec<u64>>,
    }

    impl ThreadCollective {
        fn group(size: usize) -> Vec<Self> {
            let shared = Arc::new(Shared {
                size,
                barrier: Barrier::new(size),
                slots: Mutex::new(vec![Vec::new(); size]),
                gathered: Mutex::new(vec![0; size]),
            });
            (0..size)
                .map(|rank| Self {
                    rank,
                    shared: shared.clone(),
                })
                .collect()
        }

        fn exchange(&self, mine: &[f32]) -> Vec<Vec<f32>> {
            self.shared.slots.lock().unwrap()[self.rank] = mine.to_vec();
            self.shared.barrier.wait();
            let all = self.shared.slots.lock().unwrap().clone();
            self.shared.barrier.wait();
            all
        }
    }

    impl Collective for ThreadCollective {
        fn size(&self) -> usize {
            self.shared.size
        }
        fn rank(&self) -> usize {
            self.rank
        }
        fn all_reduce_sum(&self, buffer: &mut [f32]) {
            let all = self.exchange(buffer);
            for (i, value) in buffer.iter_mut().enumerate() {
                *value = all.iter().map(|other| other[i]).sum();
            }
        }
        fn broadcast_from_root(&self, buffer: &mut [f32]) {
            let all = self.exchange(buffer);
            buffer.copy_from_slice(&all[0]);
        }
        fn all_gather(&self, value: u64) -> Vec<u64> {
            self.shared.gathered.lock().unwrap()[self.rank] = value;
            self.shared.barrier.wait();
            let all = self.shared.gathered.lock().unwrap().clone();
            self.shared.barrier.wait();
            all
        }
    }

    /// One SGD step of a 2→1 linear model on `x` with lr 1, returning the new weights.
    fn step_on(x: [f32; 2], collective: Option<Arc<dyn Collective>>) -> Vec<f32> {
        let device = Default::default();
        let model: Linear<B> = LinearConfig::new(2, 1).with_bias(false).init(&device);
        let model = load_flat(model, &[0.0, 0.0], |_| true);
        let mut optimizer = DataParallel::new(SgdConfig::new().init(), collective);
        let input = Tensor::<B, 2>::from_floats([x], &device);
        let grads = GradientsParams::from_grads(model.forward(input).sum().backward(), &model);
        let model = optimizer.step(1.0, model, grads);
        flatten_module(&model, |_| true).values
    }

    #[test]
    fn processes_step_with_the_mean_gradient() {
        let inputs = [[1.0, 2.0], [3.0, -4.0]];
        let results: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ThreadCollective::group(2)
                .into_iter()
                .zip(inputs)
                .map(|(collective, x)| scope.spawn(move || step_on(x, Some(Arc::new(collective)))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // The gradient of sum(x·w) is x; the mean of the two is (2, -1); SGD with lr 1.
        assert_eq!(results[0], vec![-2.0, 1.0]);
        assert_eq!(results[1], results[0]);
        // One process: its own gradient.
        assert_eq!(step_on([1.0, 2.0], None), vec![-1.0, -2.0]);
    }

    #[test]
    fn every_process_starts_from_node_zeros_weights() {
        let results: Vec<Result<Vec<f32>, Incoherent>> = std::thread::scope(|scope| {
            let handles: Vec<_> = ThreadCollective::group(3)
                .into_iter()
                .map(|collective| {
                    scope.spawn(move || {
                        let device = Default::default();
                        let model: Linear<B> = LinearConfig::new(4, 3).init(&device);
                        broadcast_model(model, 7, &collective)
                            .map(|model| flatten_module(&model, |_| true).values)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = results[0].as_ref().unwrap();
        assert_eq!(first.len(), 15);
        for result in &results {
            assert_eq!(result.as_ref().unwrap(), first);
        }
    }

    #[test]
    fn nodes_with_different_settings_or_models_are_refused_by_all() {
        let results: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = ThreadCollective::group(2)
                .into_iter()
                .map(|collective| {
                    scope.spawn(move || {
                        let device = Default::default();
                        let width = if collective.rank() == 0 { 3 } else { 4 };
                        let model: Linear<B> = LinearConfig::new(width, 2).init(&device);
                        let settings = broadcast_model(model.clone(), 1, &collective)
                            .err()
                            .unwrap()
                            .0;
                        let fingerprint = collective.rank() as u64;
                        let model: Linear<B> = LinearConfig::new(2, 2).init(&device);
                        let flags = broadcast_model(model, fingerprint, &collective)
                            .err()
                            .unwrap()
                            .0;
                        format!("{settings} | {flags}")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for message in results {
            assert!(
                message.contains("node 1 built a different model"),
                "{message}"
            );
            assert!(message.contains("node 1 was started with different settings"));
        }
    }

    #[test]
    fn radam_state_stays_identical_across_processes() {
        use burn::module::{Module, ModuleVisitor, Param};
        use burn::optim::adaptor::OptimizerAdaptor;
        use radam_burn::{RAdam, RAdamConfig, RAdamState};

        type Inner = <B as AutodiffBackend>::InnerBackend;
        type Adaptor = OptimizerAdaptor<RAdam, Linear<B>, B>;

        /// m_t then v_t of every parameter, in visiting order.
        struct Moments<'a> {
            record: &'a <Adaptor as Optimizer<Linear<B>, B>>::Record,
            values: Vec<f32>,
        }

        impl ModuleVisitor<B> for Moments<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let state: RAdamState<Inner, D> = self.record[&param.id].clone().into_state();
                self.values
                    .extend(state.m.into_data().to_vec::<f32>().unwrap());
                self.values
                    .extend(state.v.into_data().to_vec::<f32>().unwrap());
            }
        }

        let run = |collective: ThreadCollective| -> (Vec<f32>, Vec<f32>) {
            let device = Default::default();
            let rank = collective.rank() as f32;
            // Each process draws its own weights (and parameter ids); node 0's win.
            let model: Linear<B> = LinearConfig::new(3, 2).init(&device);
            let collective: Arc<dyn Collective> = Arc::new(collective);
            let mut model = broadcast_model(model, 0, collective.as_ref()).unwrap();
            let adaptor: Adaptor = RAdamConfig::new().init();
            let mut optimizer = DataParallel::new(adaptor, Some(collective));
            // Eight steps: the momentum phase (t ≤ 5), then rectified steps.
            for step in 0..8 {
                let x = Tensor::<B, 2>::from_floats([[rank + 1.0, -(step as f32), 0.5]], &device);
                let loss = model.forward(x).powf_scalar(2.0).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(1e-2, model, grads);
            }
            let record = optimizer.to_record();
            let mut moments = Moments {
                record: &record,
                values: Vec::new(),
            };
            model.visit(&mut moments);
            (flatten_module(&model, |_| true).values, moments.values)
        };
        let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = ThreadCollective::group(2)
                .into_iter()
                .map(|collective| scope.spawn(move || run(collective)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results[0].0, results[1].0, "θ differs between processes");
        assert_eq!(
            results[0].1, results[1].1,
            "m_t or v_t differs between processes"
        );
        assert!(results[0].1.iter().any(|&value| value != 0.0));
    }
}
