//! Memory during optimizer steps: the fused ndarray step works in place, so once every
//! parameter has its moments, a step needs no memory beyond θ, g, m and v. The tensor-operation
//! step allocates temporaries the size of θ several times over (which shows this test can fail).
#![recursion_limit = "256"]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::{Module, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use radam_burn::RAdamConfig;
use radam_train::backend::NdArrayBackend;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type B = NdArrayBackend;

#[derive(Module, Debug)]
struct Flat<B: Backend> {
    weights: Param<Tensor<B, 1>>,
}

/// Bytes above the live heap at the start of the steps that the steps needed at their peak.
fn extra_peak_bytes(fused: bool, n: usize) -> usize {
    let device = Default::default();
    let radam = RAdamConfig::new().build().unwrap();
    let radam = if fused {
        radam
    } else {
        radam.tensor_ops_only()
    };
    let mut optimizer: OptimizerAdaptor<_, Flat<B>, B> = OptimizerAdaptor::from(radam);
    let mut model = Flat {
        weights: Param::from_tensor(Tensor::<B, 1>::random(
            [n],
            Distribution::Normal(0.0, 1.0),
            &device,
        )),
    };
    let grad = Tensor::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, 1>::random(
        [n],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut step = |model: Flat<B>| {
        let mut grads = GradientsParams::new();
        grads.register(model.weights.id, grad.clone());
        optimizer.step(1e-3, model, grads)
    };
    // Past the first step (which creates m and v) and into the rectified phase.
    for _ in 0..8 {
        model = step(model);
    }
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);
    for _ in 0..5 {
        model = step(model);
    }
    let extra = PEAK.load(Ordering::SeqCst).saturating_sub(baseline);
    drop(model);
    extra
}

#[test]
fn fused_steps_need_no_memory_beyond_theta_g_m_v() {
    let n = 1_000_000;
    let theta_bytes = 4 * n;
    let fused = extra_peak_bytes(true, n);
    let tensor_ops = extra_peak_bytes(false, n);
    println!(
        "extra peak memory per step, {n} parameters: fused {fused} bytes, tensor ops {tensor_ops} bytes ({:.1} × θ)",
        tensor_ops as f64 / theta_bytes as f64
    );
    // Bookkeeping only (records map, parameter ids): far below one θ.
    assert!(
        fused < theta_bytes / 100,
        "fused steps needed {fused} extra bytes"
    );
    assert!(
        tensor_ops >= theta_bytes,
        "the tensor-op step was expected to allocate temporaries"
    );
}
