//! PyTorch weights for the models: a `state_dict` saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), path)`), read without Python, and the one
//! place where PyTorch's parameter names meet ours (each model's `load_state_dict`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use burn::module::{Param, RunningState};
use burn::nn::attention::MultiHeadAttention;
use burn::nn::lstm::Lstm;
use burn::nn::transformer::PositionWiseFeedForward;
use burn::nn::{BatchNorm, GateController, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::layers::adaptive_softmax::{AdaptiveSoftmax, AdaptiveTail};

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

    /// What `load` makes of these tensors, read strictly as PyTorch's `load_state_dict(strict=
    /// True)` reads: `load` reads through a view of its own, and a tensor it left unread is an
    /// error ([`check_all_read`](Self::check_all_read)). Each model's `load_state_dict` is one
    /// such load, so an earlier load from the same `StateDict` does not count as reading.
    pub(crate) fn load_strictly<T>(
        &self,
        load: impl FnOnce(&StateDict) -> Result<T, String>,
    ) -> Result<T, String> {
        let view = self.with_prefix("");
        let loaded = load(&view)?;
        view.check_all_read()?;
        Ok(loaded)
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
pub(crate) fn trainable_as<B: Backend, const D: usize>(
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

/// `linear` with the rows `rows` of a weight PyTorch stacks for several projections
/// (`[n·out, in]`, transposed to Burn's `[in, out]`) and of the bias stacked alike: one gate of
/// an `nn.LSTM`, or the query, key or value projection of an `nn.MultiheadAttention`.
fn stacked_part<B: Backend>(
    linear: Linear<B>,
    weight: &Tensor<B, 2>,
    bias: &Tensor<B, 1>,
    rows: &std::ops::Range<usize>,
) -> Linear<B> {
    let width = weight.dims()[1];
    let loaded = weight.clone().slice([rows.clone(), 0..width]).transpose();
    Linear {
        weight: linear.weight.map(|w| trainable_as(&w, loaded)),
        bias: linear
            .bias
            .map(|b| b.map(|b| trainable_as(&b, bias.clone().slice([rows.clone()])))),
    }
}

/// Layer `layer` of a `torch.nn.LSTM` `prefix` into Burn's `lstm`. PyTorch stacks the four
/// gates' weights as `[4·h, in]` rows in the order input, forget, cell, output
/// (`weight_ih_l{layer}`, `weight_hh_l{layer}`), with an input-side and a hidden-side bias
/// (`bias_ih_l{layer}`, `bias_hh_l{layer}`); Burn keeps one `Linear` per gate and side, `[in, h]`,
/// each with its bias. The sum of the two biases is what either computes.
pub(crate) fn load_lstm_layer<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    layer: usize,
    mut lstm: Lstm<B>,
) -> Result<Lstm<B>, String> {
    let h = lstm.d_hidden;
    let like = lstm.input_gate.input_transform.weight.val();
    let [d_input, _] = like.dims();
    let device = like.device();
    let name = |part: &str| format!("{prefix}.{part}_l{layer}");
    let weight_ih = dict.tensor::<B, 2>(&name("weight_ih"), [4 * h, d_input], &device)?;
    let weight_hh = dict.tensor::<B, 2>(&name("weight_hh"), [4 * h, h], &device)?;
    let bias_ih = dict.tensor::<B, 1>(&name("bias_ih"), [4 * h], &device)?;
    let bias_hh = dict.tensor::<B, 1>(&name("bias_hh"), [4 * h], &device)?;
    let gate = |controller: GateController<B>, index: usize| {
        let rows = index * h..(index + 1) * h;
        GateController {
            input_transform: stacked_part(controller.input_transform, &weight_ih, &bias_ih, &rows),
            hidden_transform: stacked_part(
                controller.hidden_transform,
                &weight_hh,
                &bias_hh,
                &rows,
            ),
        }
    };
    lstm.input_gate = gate(lstm.input_gate, 0);
    lstm.forget_gate = gate(lstm.forget_gate, 1);
    lstm.cell_gate = gate(lstm.cell_gate, 2);
    lstm.output_gate = gate(lstm.output_gate, 3);
    Ok(lstm)
}

/// A `torch.nn.LayerNorm` `prefix` (`weight` γ, `bias` β) into `norm`.
pub(crate) fn load_layer_norm<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut norm: LayerNorm<B>,
) -> Result<LayerNorm<B>, String> {
    norm.gamma = load_param(dict, &format!("{prefix}.weight"), norm.gamma)?;
    norm.beta = load_param(dict, &format!("{prefix}.bias"), norm.beta)?;
    Ok(norm)
}

/// A `torch.nn.MultiheadAttention` `prefix` (with biases, one `d_model` for queries, keys and
/// values) into Burn's `attention`: PyTorch stacks the query, key and value projections as the
/// rows of `in_proj_weight` `[3·d, d]` and `in_proj_bias` `[3·d]`; the output projection is
/// `out_proj`. Both split the `d` features into heads the same way (head `h` owns features
/// `h·d_k..(h + 1)·d_k`).
pub(crate) fn load_attention<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut attention: MultiHeadAttention<B>,
) -> Result<MultiHeadAttention<B>, String> {
    let d = attention.d_model;
    let device = attention.query.weight.val().device();
    let weight = dict.tensor::<B, 2>(&format!("{prefix}.in_proj_weight"), [3 * d, d], &device)?;
    let bias = dict.tensor::<B, 1>(&format!("{prefix}.in_proj_bias"), [3 * d], &device)?;
    let part = |linear: Linear<B>, index: usize| {
        stacked_part(linear, &weight, &bias, &(index * d..(index + 1) * d))
    };
    attention.query = part(attention.query, 0);
    attention.key = part(attention.key, 1);
    attention.value = part(attention.value, 2);
    attention.output = load_linear(dict, &format!("{prefix}.out_proj"), attention.output)?;
    Ok(attention)
}

/// The feed-forward layer of a `torch.nn.TransformerEncoderLayer` or `…DecoderLayer` `prefix`
/// (`linear1`, `linear2`) into Burn's `layer`.
pub(crate) fn load_feed_forward<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut layer: PositionWiseFeedForward<B>,
) -> Result<PositionWiseFeedForward<B>, String> {
    layer.linear_inner = load_linear(dict, &format!("{prefix}.linear1"), layer.linear_inner)?;
    layer.linear_outer = load_linear(dict, &format!("{prefix}.linear2"), layer.linear_outer)?;
    Ok(layer)
}

/// A `torch.nn.AdaptiveLogSoftmaxWithLoss` `prefix` (no head bias, its default) into
/// `softmax`: `head` and each cluster's `tail.{i}.0` (projection) and `tail.{i}.1` (output).
pub(crate) fn load_adaptive_softmax<B: Backend>(
    dict: &StateDict,
    prefix: &str,
    mut softmax: AdaptiveSoftmax<B>,
) -> Result<AdaptiveSoftmax<B>, String> {
    softmax.head = load_linear(dict, &format!("{prefix}.head"), softmax.head)?;
    softmax.tails = std::mem::take(&mut softmax.tails)
        .into_iter()
        .enumerate()
        .map(|(i, tail)| {
            Ok(AdaptiveTail {
                projection: load_linear(dict, &format!("{prefix}.tail.{i}.0"), tail.projection)?,
                output: load_linear(dict, &format!("{prefix}.tail.{i}.1"), tail.output)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(softmax)
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

    #[test]
    fn an_lstm_lm_refuses_a_state_dict_of_another_output_layer_or_size() {
        use crate::lstm_lm::{LmOutputLayer, LstmLmConfig};
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/parity/lstm_lm_tied.safetensors");
        let tied = StateDict::read(&path).unwrap().with_prefix("weights.");
        let load = |config: LstmLmConfig| {
            config
                .with_d_embedding(16)
                .with_d_hidden(32)
                .init::<TestBackend>(&Default::default())
                .load_state_dict(&tied)
                .err()
        };
        assert_eq!(load(LstmLmConfig::small(50)), None);
        // An untied full softmax has an output layer the file lacks and no projection.
        assert_eq!(
            load(LstmLmConfig::new(50)).unwrap(),
            "the state dict has no tensor `output.weight`"
        );
        assert_eq!(
            load(LstmLmConfig::new(50).with_output(LmOutputLayer::Adaptive {
                cutoffs: vec![6, 20],
                div_value: 4.0
            }))
            .unwrap(),
            "the state dict has no tensor `output.head.weight`"
        );
        // One layer: the second layer's weights have no place.
        assert_eq!(
            load(LstmLmConfig::small(50).with_num_layers(1)).unwrap(),
            "the model has no parameter for `lstm.bias_hh_l1`"
        );
        // A different hidden size: the stacked gate weights are named with their shape.
        let error = LstmLmConfig::small(50)
            .with_d_embedding(16)
            .with_d_hidden(8)
            .init::<TestBackend>(&Default::default())
            .load_state_dict(&tied)
            .err()
            .unwrap();
        assert_eq!(
            error,
            "`lstm.weight_ih_l0` has shape [128, 16], the model expects [32, 16]"
        );
    }
}
