//! PyTorch weights for the models: a `state_dict` saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), path)`), read without Python, and the one
//! place where PyTorch's parameter names meet ours (each model's `load_state_dict`).

use std::path::Path;

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// The tensors of a safetensors file, by name.
pub struct StateDict {
    bytes: Vec<u8>,
    /// Prepended to every name looked up ([`StateDict::with_prefix`]).
    prefix: String,
}

impl StateDict {
    /// Reads `path`; one `error:`-ready line if it cannot be read or is not safetensors.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_bytes(bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The tensors of safetensors `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        SafeTensors::deserialize(&bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
        Ok(Self {
            bytes,
            prefix: String::new(),
        })
    }

    /// The same tensors, looked up as `prefix` + name (a file holding several state dicts).
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            bytes: self.bytes.clone(),
            prefix: format!("{}{prefix}", self.prefix),
        }
    }

    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("checked when read")
    }

    /// The names of the tensors under the prefix (without it), sorted.
    pub fn names(&self) -> Vec<String> {
        let tensors = self.tensors();
        let mut names: Vec<String> = tensors
            .names()
            .into_iter()
            .filter_map(|name| name.strip_prefix(self.prefix.as_str()))
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// The f32 tensor `name`: its shape and its values in row-major order.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(&format!("{}{name}", self.prefix))
            .map_err(|_| format!("the state dict has no tensor `{name}`"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!("`{name}` is {:?}, expected F32", view.dtype()));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    /// The i64 tensor `name` (labels, token ids): its shape and values.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>), String> {
        let tensors = self.tensors();
        let view = tensors
            .tensor(&format!("{}{name}", self.prefix))
            .map_err(|_| format!("the state dict has no tensor `{name}`"))?;
        if view.dtype() != Dtype::I64 {
            return Err(format!("`{name}` is {:?}, expected I64", view.dtype()));
        }
        let values = view
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    /// The f32 tensor `name` on `device`, checked to have `expected`'s shape.
    pub fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>, String> {
        let (shape, values) = self.f32(name)?;
        if shape != expected {
            return Err(format!(
                "`{name}` has shape {shape:?}, the model expects {expected:?}"
            ));
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }
}

/// `loaded`, tracking gradients if `like` did.
fn trainable_as<B: Backend, const D: usize>(
    like: &Tensor<B, D>,
    loaded: Tensor<B, D>,
) -> Tensor<B, D> {
    if like.is_require_grad() {
        loaded.require_grad()
    } else {
        loaded
    }
}

/// `param` with the values of `name`, its shape checked.
pub(crate) fn load_param<B: Backend, const D: usize>(
    dict: &StateDict,
    name: &str,
    param: Param<Tensor<B, D>>,
) -> Result<Param<Tensor<B, D>>, String> {
    let tensor = param.val();
    let loaded = dict.tensor::<B, D>(name, tensor.dims(), &tensor.device())?;
    Ok(param.map(|_| trainable_as(&tensor, loaded)))
}

/// A `torch.nn.BatchNorm2d` `prefix` (`weight`, `bias`, `running_mean`, `running_var`) into
/// `norm`.
pub(crate) fn load_batch_norm<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut norm: BatchNorm<B>,
) -> Result<BatchNorm<B>, String> {
    norm.gamma = load_param(dict, &format!("{prefix}.weight"), norm.gamma)?;
    norm.beta = load_param(dict, &format!("{prefix}.bias"), norm.beta)?;
    let running = |name: &str, state: &RunningState<Tensor<B, 1>>| {
        let value = state.value_sync();
        dict.tensor::<B, 1>(&format!("{prefix}.{name}"), value.dims(), &value.device())
            .map(RunningState::new)
    };
    norm.running_mean = running("running_mean", &norm.running_mean)?;
    norm.running_var = running("running_var", &norm.running_var)?;
    Ok(norm)
}

/// A `torch.nn.Linear` `prefix` into `linear`: PyTorch stores the weight `[out, in]`, Burn
/// `[in, out]`.
pub(crate) fn load_linear<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut linear: Linear<B>,
) -> Result<Linear<B>, String> {
    let weight = linear.weight.val();
    let [d_in, d_out] = weight.dims();
    let loaded =
        dict.tensor::<B, 2>(&format!("{prefix}.weight"), [d_out, d_in], &weight.device())?;
    linear.weight = linear
        .weight
        .map(|_| trainable_as(&weight, loaded.transpose()));
    if let Some(bias) = linear.bias {
        linear.bias = Some(load_param(dict, &format!("{prefix}.bias"), bias)?);
    }
    Ok(linear)
}
