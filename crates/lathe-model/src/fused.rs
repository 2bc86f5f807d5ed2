//! Fused training operations with their own backward pass.
//!
//! Under autodiff, burn builds attention and RMSNorm from primitive ops and keeps every
//! intermediate until backward: per layer several `[b, h, t, t]` score tensors, which
//! were most of a training step's memory. These ops run the backend's fused forward and
//! keep only their inputs; backward recomputes what it needs, one layer at a time.
//!
//! Each op is a backend extension: a forward on `Flex` and a backward for `Autodiff`.
//! The backwards of attention, RMSNorm and SwiGLU call [`FusedKernels`], which `Flex`
//! implements with host kernels (attention's skip the masked half of the scores; RMSNorm
//! and SwiGLU are one pass each). The packed matmul's backward is primitive ops.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{Shape, Tensor, TensorData};

use crate::attention_kernel::{self, Dims};
use crate::elementwise_kernel;
use crate::quant::PackedWeight;

/// Training ops fused for memory.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// Causal scaled-dot-product attention, `softmax(q·kᵀ/√hd + causal)·v`, with
    /// grouped key/value heads: `q [b, h, t, hd]`, `k`, `v` `[b, kvh, t, hd]` →
    /// `[b, h, t, hd]`. `hidden` (`[b·t]`) marks keys hidden from the queries after
    /// them (token masking).
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: Option<Arc<Vec<bool>>>,
    ) -> FloatTensor<Self>;

    /// RMSNorm over the last dimension: `x / √(mean(x²) + eps) · gamma`.
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> FloatTensor<Self>;

    /// The SwiGLU gate of the MLP: `silu(gate) ⊙ up`.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x [.., in] · W [in, out]` with a frozen packed `W`, expanded for the product
    /// and again for the input gradient; only the packed form is kept in between.
    fn packed_matmul(x: FloatTensor<Self>, w: Arc<PackedWeight>) -> FloatTensor<Self>;
}

/// Causal attention with grouped key/value heads (see [`FusedOps::causal_attention`]).
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    hidden: Option<Arc<Vec<bool>>>,
) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        hidden,
    ))
}

/// RMSNorm of `x` `[.., d]` with `gamma` `[d]` (see [`FusedOps::rms_norm`]).
pub fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, eps: f64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::rms_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        eps,
    ))
}

/// `silu(gate) ⊙ up` (see [`FusedOps::swiglu`]).
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::swiglu(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}

/// `x · W` for a frozen packed weight (see [`FusedOps::packed_matmul`]).
pub fn packed_matmul<const D: usize>(x: Tensor<D>, w: Arc<PackedWeight>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedOps>::packed_matmul(x.into_dispatch(), w))
}

impl FusedOps for Flex {
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: Option<Arc<Vec<bool>>>,
    ) -> FloatTensor<Self> {
        Flex::attention_forward(q, k, v, hidden.as_deref().map(Vec::as_slice)).0
    }

    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let (x, gamma) = (contiguous(x), contiguous(gamma));
        let out = elementwise_kernel::rms_norm(values(&x), values(&gamma), eps);
        flex(out, &x.shape())
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let (gate, up) = (contiguous(gate), contiguous(up));
        flex(
            elementwise_kernel::swiglu(values(&gate), values(&up)),
            &gate.shape(),
        )
    }

    fn packed_matmul(x: FloatTensor<Self>, w: Arc<PackedWeight>) -> FloatTensor<Self> {
        let expanded = expand::<Flex>(&w, &x);
        rows_matmul::<Flex>(x, expanded)
    }
}

/// The packed weight as a dense `[in, out]` tensor on the device of `like`.
fn expand<B: Backend>(w: &PackedWeight, like: &FloatTensor<B>) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(w.unpack(), w.shape()), &like.device())
}

/// `x [.., k] · m [k, n]` → `[.., n]`, through a `[rows, k]` view of `x`.
fn rows_matmul<B: Backend>(x: FloatTensor<B>, m: FloatTensor<B>) -> FloatTensor<B> {
    let mut shape = x.shape();
    let k = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / k;
    let n = m.shape()[1];
    let product = B::float_matmul(B::float_reshape(x, Shape::new([rows, k])), m);
    let last = shape.num_dims() - 1;
    shape[last] = n;
    B::float_reshape(product, shape)
}

impl<B: Backend + FusedOps + FusedKernels, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: Option<Arc<Vec<bool>>>,
    ) -> FloatTensor<Self> {
        let nodes = [q.node(), k.node(), v.node()];
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        let (out, lse) = B::attention_forward(
            q.clone(),
            k.clone(),
            v.clone(),
            hidden.as_deref().map(Vec::as_slice),
        );
        match CausalAttention
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, out.clone(), lse, hidden), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node()];
        let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
        let out = B::rms_norm(x.clone(), gamma.clone(), eps);
        match RmsNorm.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((x, gamma, eps), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn packed_matmul(x: FloatTensor<Self>, w: Arc<PackedWeight>) -> FloatTensor<Self> {
        let nodes = [x.node()];
        let out = B::packed_matmul(x.into_primitive(), w.clone());
        match PackedMatmul.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(w, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [gate.node(), up.node()];
        let (gate, up) = (gate.into_primitive(), up.into_primitive());
        let out = B::swiglu(gate.clone(), up.clone());
        match SwiGlu.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((gate, up), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

#[derive(Debug)]
struct CausalAttention;

impl<B: Backend + FusedKernels> Backward<B, 3> for CausalAttention {
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        Option<Arc<Vec<bool>>>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (q, k, v, out, lse, hidden) = ops.state;
        let dout = grads.consume::<B>(&ops.node);
        let hidden = hidden.as_deref().map(Vec::as_slice);
        let (dq, dk, dv) = B::attention_backward((q, k, v), out, lse, dout, hidden);
        for (node, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The kernels behind the fused ops' backward passes (and attention's forward), for
/// each backend.
pub trait FusedKernels: Backend {
    /// Causal attention with grouped heads: the output `[b, h, t, hd]` and the row
    /// log-sum-exp of the scaled scores `[b, h, t]`; `hidden` keys (`[b·t]`) are
    /// hidden from the queries after them.
    fn attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        hidden: Option<&[bool]>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(dq, dk, dv)` from the forward's inputs `(q, k, v)`, output and log-sum-exp,
    /// the output gradient and the same `hidden` keys.
    fn attention_backward(
        qkv: (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>),
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        dout: FloatTensor<Self>,
        hidden: Option<&[bool]>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `(dgate, dup)` of `silu(gate) ⊙ up` for the output gradient `dy`, with
    /// `s = sigmoid(gate)`: `dup = dy ⊙ gate·s`, `dgate = dy ⊙ up ⊙ s·(1 + gate·(1 − s))`.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(dx, dgamma)` of RMSNorm over the last dimension for the output gradient `dy`.
    /// With `r = 1/rms`, `x̂ = x·r` and `g = dy ⊙ gamma`: `dx = r·(g − x̂·mean(g ⊙ x̂))`,
    /// `dgamma = Σ dy ⊙ x̂` over all leading dims.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        eps: f64,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// `t` laid out row-major from its first value (copied only when it is not).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a [`contiguous`] f32 tensor.
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Shapes of `q [b, h, t, hd]` and `k [b, kvh, t, hd]`.
fn attention_dims(q: &FlexTensor, k: &FlexTensor) -> Dims {
    let [b, heads, t, d] = q.shape().dims();
    Dims {
        b,
        heads,
        kv_heads: k.shape()[1],
        t,
        d,
    }
}

impl FusedKernels for Flex {
    fn attention_forward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        hidden: Option<&[bool]>,
    ) -> (FlexTensor, FlexTensor) {
        let dims = attention_dims(&q, &k);
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        let (out, lse) =
            attention_kernel::forward(values(&q), values(&k), values(&v), hidden, dims);
        (
            flex(out, &[dims.b, dims.heads, dims.t, dims.d]),
            flex(lse, &[dims.b, dims.heads, dims.t]),
        )
    }

    fn attention_backward(
        (q, k, v): (FlexTensor, FlexTensor, FlexTensor),
        out: FlexTensor,
        lse: FlexTensor,
        dout: FlexTensor,
        hidden: Option<&[bool]>,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let dims = attention_dims(&q, &k);
        let (qs, ks) = (q.shape(), k.shape());
        let [q, k, v, out, lse, dout] = [q, k, v, out, lse, dout].map(contiguous);
        let (dq, dk, dv) = attention_kernel::backward(
            (values(&q), values(&k), values(&v)),
            values(&out),
            values(&lse),
            values(&dout),
            hidden,
            dims,
        );
        (flex(dq, &qs), flex(dk, &ks), flex(dv, &ks))
    }

    fn swiglu_backward(
        gate: FlexTensor,
        up: FlexTensor,
        dy: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let [gate, up, dy] = [gate, up, dy].map(contiguous);
        let (dgate, dup) =
            elementwise_kernel::swiglu_backward(values(&gate), values(&up), values(&dy));
        (flex(dgate, &gate.shape()), flex(dup, &up.shape()))
    }

    fn rms_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        eps: f64,
        dy: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let [x, gamma, dy] = [x, gamma, dy].map(contiguous);
        let (dx, dgamma) =
            elementwise_kernel::rms_norm_backward(values(&x), values(&gamma), eps, values(&dy));
        (flex(dx, &x.shape()), flex(dgamma, &gamma.shape()))
    }
}

#[derive(Debug)]
struct RmsNorm;

impl<B: Backend + FusedKernels> Backward<B, 2> for RmsNorm {
    type State = (FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, eps) = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let (dx, dgamma) = B::rms_norm_backward(x, gamma, eps, dy);
        for (node, grad) in ops.parents.into_iter().zip([dx, dgamma]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct SwiGlu;

impl<B: Backend + FusedKernels> Backward<B, 2> for SwiGlu {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let dy = grads.consume::<B>(&ops.node);
        let (dgate, dup) = B::swiglu_backward(gate, up, dy);
        for (node, grad) in ops.parents.into_iter().zip([dgate, dup]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Debug)]
struct PackedMatmul;

impl<B: Backend> Backward<B, 1> for PackedMatmul {
    type State = Arc<PackedWeight>;

    /// `dx = dy · Wᵀ`; the frozen `W` gets no gradient.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        if let [Some(node)] = ops.parents {
            let w = expand::<B>(&ops.state, &dy);
            grads.register::<B>(node.id, rows_matmul::<B>(dy, B::float_swap_dims(w, 0, 1)));
        }
    }
}
