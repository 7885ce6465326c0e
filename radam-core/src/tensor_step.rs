//! The element-wise maths of one RAdam step, written once for every Burn version.
//!
//! Burn's tensor types differ between versions (`Tensor<B, D>` in 0.19, `Tensor<D>` in 0.22), but
//! the operations a step needs (`mul_scalar`, `add`, `mul`, `sqrt`, `add_scalar`, `div`, `-`) are
//! spelled the same. [`tensor_op_step!`](crate::tensor_op_step) holds the step as Burn tensor
//! operations, and each adaptor expands it for its own tensor type: one text of the maths, no
//! copy per version.

/// One RAdam step with Burn tensor operations, for the tensor type of whichever Burn version
/// expands it.
///
/// `tensor_op_step!(plan, theta, grad, moments)`: `plan` is a `&`[`StepPlan`](crate::StepPlan),
/// `theta` and `grad` are tensors of one shape, `moments` is `Option<(m_{t−1}, v_{t−1})>` (`None`
/// on the first step). Evaluates to `(θ_t, m_t, v_t)`.
#[macro_export]
macro_rules! tensor_op_step {
    ($plan:expr, $theta:expr, $grad:expr, $moments:expr) => {{
        let plan: &$crate::StepPlan = $plan;
        let theta = $theta;
        let grad = $grad;

        // g_t ← ∇f(θ_{t−1}) + λ·θ_{t−1}   (L2 weight decay, coupled)
        let g_t = if plan.l2_penalty != 0.0 {
            grad + theta.clone().mul_scalar(plan.l2_penalty)
        } else {
            grad
        };

        // m_t ← β1·m_{t−1} + (1 − β1)·g_t   (Algorithm 2, line 5)
        // v_t ← β2·v_{t−1} + (1 − β2)·g_t²  (Algorithm 2, line 4)
        let g_m = g_t.clone().mul_scalar(1.0 - plan.beta_1);
        let g2_v = g_t.clone().mul_scalar(1.0 - plan.beta_2).mul(g_t);
        let (m_t, v_t) = match $moments {
            Some((m, v)) => (
                m.mul_scalar(plan.beta_1).add(g_m),
                v.mul_scalar(plan.beta_2).add(g2_v),
            ),
            None => (g_m, g2_v),
        };

        // θ ← θ·(1 − α·λ)   (decoupled weight decay, on steps that update θ)
        let theta = match plan.decay_factor {
            Some(factor) => theta.mul_scalar(factor),
            None => theta,
        };

        let theta = match plan.update {
            // θ_t ← θ_{t−1} − α·r_t·m̂_t·l_t, l_t = sqrt(1 − β2^t) / (sqrt(v_t) + ε)  (lines 10–12)
            $crate::Update::Rectified { step_size, epsilon } => {
                let denominator = v_t.clone().sqrt().add_scalar(epsilon);
                theta - m_t.clone().mul_scalar(step_size).div(denominator)
            }
            // θ_t ← θ_{t−1} − α·m̂_t   (line 14)
            $crate::Update::Momentum { step_size } => theta - m_t.clone().mul_scalar(step_size),
            $crate::Update::Skip => theta,
        };
        (theta, m_t, v_t)
    }};
}
