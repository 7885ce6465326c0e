//! PyTorch weights for the models: a `state_dict` saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), path)`), read without Python, and the one
//! place where PyTorch's parameter names meet ours (each model's `load_state_dict`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use burn::module::{Param, RunningState};
use burn::nn::{BatchNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

/// The tensors of a safetensors file, by name.
pub struct StateDict {
    /// The file's bytes, shared by the views of [`StateDict::with_prefix`].
    bytes: Arc<[u8]>,
    /// Prepended to every name looked up ([`StateDict::with_prefix`]).
    prefix: String,
    /// The names looked up so far (without the prefix), for [`StateDict::check_all_read`].
    read: RefCell<BTreeSet<String>>,
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
            bytes: bytes.into(),
            prefix: String::new(),
            read: RefCell::default(),
        })
    }

    /// The same tensors, looked up as `prefix` + name (a file holding several state dicts).
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            bytes: Arc::clone(&self.bytes),
            prefix: format!("{}{prefix}", self.prefix),
            read: RefCell::default(),
        }
    }

    /// An error naming the first tensor (under the prefix) that nothing has read, as PyTorch's
    /// strict `load_state_dict` refuses unexpected keys: a state dict of another architecture
    /// must not load silently into the parameters the two share. `*.num_batches_tracked`, which
    /// no model here keeps, is not counted.
    pub fn check_all_read(&self) -> Result<(), String> {
        let read = self.read.borrow();
        match self
            .names()
            .into_iter()
            .find(|name| !read.contains(name) && !name.ends_with(".num_batches_tracked"))
        {
            Some(name) => Err(format!("the model has no parameter for `{name}`")),
            None => Ok(()),
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

    /// The tensor `name` of type `dtype`: its shape and its values in row-major order, each
    /// decoded from its `N` little-endian bytes by `decode`.
    fn values<T, const N: usize>(
        &self,
        name: &str,
        dtype: Dtype,
        decode: fn([u8; N]) -> T,
    ) -> Result<(Vec<usize>, Vec<T>), String> {
        self.read.borrow_mut().insert(name.to_string());
        let tensors = self.tensors();
        let view = tensors
            .tensor(&format!("{}{name}", self.prefix))
            .map_err(|_| format!("the state dict has no tensor `{name}`"))?;
        if view.dtype() != dtype {
            return Err(format!(
                "`{name}` is {:?}, expected {dtype:?}",
                view.dtype()
            ));
        }
        let values = view
            .data()
            .chunks_exact(N)
            .map(|bytes| decode(bytes.try_into().expect("N bytes")))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    /// The f32 tensor `name`: its shape and its values in row-major order.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        self.values(name, Dtype::F32, f32::from_le_bytes)
    }

    /// The i64 tensor `name` (labels, token ids): its shape and values.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>), String> {
        self.values(name, Dtype::I64, i64::from_le_bytes)
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

#[cfg(all(test, feature = "ndarray-kernels"))]
mod tests {
    use super::*;
    use crate::resnet::CifarResNetConfig;
    use crate::test_support::TestBackend;

    fn resnet20_option_b() -> StateDict {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/parity/resnet20_option_b.safetensors");
        StateDict::read(&path).unwrap().with_prefix("weights.")
    }

    #[test]
    fn what_is_not_a_state_dict_is_one_error_naming_it() {
        let error = StateDict::from_bytes(b"not safetensors at all".to_vec())
            .err()
            .unwrap();
        assert!(error.starts_with("not a safetensors file"), "{error}");
        let missing = Path::new("/nonexistent/weights.safetensors");
        let error = StateDict::read(missing).err().unwrap();
        assert!(
            error.starts_with("cannot read /nonexistent/weights.safetensors"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_or_misshapen_tensor_is_named() {
        let dict = resnet20_option_b();
        assert!(dict.names().contains(&"fc.weight".to_string()));
        let error = dict.f32("fc.nothing").err().unwrap();
        assert_eq!(error, "the state dict has no tensor `fc.nothing`");
        // Width 16 against the file's width 8: the first tensor loaded is named.
        let error = CifarResNetConfig::new(20)
            .init::<TestBackend>(&Default::default())
            .load_state_dict(&dict)
            .err()
            .unwrap();
        assert_eq!(
            error,
            "`stem.0.weight` has shape [8, 3, 3, 3], the model expects [16, 3, 3, 3]"
        );
        // Option A has no projections: an option-A model refuses an option-B file's, an
        // option-B model misses them in an option-A file.
        let error = CifarResNetConfig::new(20)
            .with_width(8)
            .with_shortcut(crate::resnet::Shortcut::ZeroPad)
            .init::<TestBackend>(&Default::default())
            .load_state_dict(&dict)
            .err()
            .unwrap();
        assert_eq!(
            error,
            "the model has no parameter for `blocks.3.projection.0.weight`"
        );
        let option_a = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/parity/resnet20_option_a.safetensors");
        let option_a = StateDict::read(&option_a).unwrap().with_prefix("weights.");
        let error = CifarResNetConfig::new(20)
            .with_width(8)
            .init::<TestBackend>(&Default::default())
            .load_state_dict(&option_a)
            .err()
            .unwrap();
        assert_eq!(
            error,
            "the state dict has no tensor `blocks.3.projection.0.weight`"
        );
        assert_eq!(
            dict.i64("fc.weight").err().unwrap(),
            "`fc.weight` is F32, expected I64"
        );
    }
}
