//! The fused training ops against burn's own decomposed ops: same values, same
//! gradients, on the autodiff device.

use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Arc;

use lathe_model::fused::{causal_attention, packed_matmul, rms_norm, swiglu};
use lathe_model::quant::{BaseDtype, PackedWeight};

fn device() -> Device {
    Device::autodiff(Device::flex())
}

/// Values uniform in ±`amplitude`, tracked for gradients.
fn random<const D: usize>(shape: [usize; D], seed: u64, amplitude: f32) -> Tensor<D> {
    let n: usize = shape.iter().product();
    // A fixed LCG keeps the inputs identical on every run and platform.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * amplitude
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &device()).require_grad()
}

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

/// The textbook computation, with grouped heads repeated as transformers does.
fn reference_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [b, h, t, hd] = q.dims();
    let kvh = k.dims()[1];
    let repeat = |x: Tensor<4>| {
        x.unsqueeze_dim::<5>(2)
            .expand([b, kvh, h / kvh, t, hd])
            .reshape([b, h, t, hd])
    };
    let scores = q.matmul(repeat(k).swap_dims(2, 3)) / (hd as f32).sqrt();
    let future: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let future = Tensor::<2>::from_data(TensorData::new(future, [t, t]), &device());
    softmax(scores + future.unsqueeze::<4>(), 3).matmul(repeat(v))
}

#[test]
fn causal_attention_matches_the_decomposed_computation() {
    // Three query heads per key/value head, as in SmolLM2; one partial query block,
    // then two full ones and a partial one.
    for t in [7, 130] {
        attention_case(t);
    }
}

fn attention_case(t: usize) {
    let (b, h, kvh, hd) = (2, 6, 2, 8);
    let q = random([b, h, t, hd], 1, 1.0);
    let k = random([b, kvh, t, hd], 2, 1.0);
    let v = random([b, kvh, t, hd], 3, 1.0);
    let weights = random([b, h, t, hd], 4, 1.0).detach();

    let fused = causal_attention(q.clone(), k.clone(), v.clone(), None);
    let grads = (fused.clone() * weights.clone()).sum().backward();
    let fused_grads: Vec<Vec<f32>> = [&q, &k, &v]
        .iter()
        .map(|x| values(&x.grad(&grads).unwrap()))
        .collect();

    let reference = reference_attention(q.clone(), k.clone(), v.clone());
    let grads = (reference.clone() * weights).sum().backward();
    assert_close("output", &values(&fused), &values(&reference), 1e-5);
    for (name, (x, got)) in ["dq", "dk", "dv"]
        .iter()
        .zip([&q, &k, &v].iter().zip(&fused_grads))
    {
        assert_close(name, got, &values(&x.grad(&grads).unwrap()), 1e-5);
    }
}

#[test]
fn rms_norm_matches_the_decomposed_computation() {
    // Enough rows for several parallel tasks, whose `dgamma` parts are added up.
    let (b, t, d) = (2, 200, 96);
    let x = random([b, t, d], 5, 1.0);
    let gamma = random([d], 6, 1.0);
    let weights = random([b, t, d], 7, 1.0).detach();
    let eps = 1e-5;

    let fused = rms_norm(x.clone(), gamma.clone(), eps);
    let grads = (fused.clone() * weights.clone()).sum().backward();
    let (dx, dgamma) = (
        values(&x.grad(&grads).unwrap()),
        values(&gamma.grad(&grads).unwrap()),
    );

    let rms = (x.clone().square().mean_dim(2) + eps).sqrt();
    let reference = x.clone() / rms * gamma.clone().unsqueeze::<3>();
    let grads = (reference.clone() * weights).sum().backward();
    assert_close("output", &values(&fused), &values(&reference), 1e-5);
    assert_close("dx", &dx, &values(&x.grad(&grads).unwrap()), 1e-5);
    assert_close(
        "dgamma",
        &dgamma,
        &values(&gamma.grad(&grads).unwrap()),
        1e-5,
    );
}

#[test]
fn swiglu_matches_the_decomposed_computation() {
    // Several parallel chunks and a partial one.
    let shape = [2, 100, 201];
    let gate = random(shape, 8, 4.0);
    let up = random(shape, 9, 1.0);
    let weights = random(shape, 10, 1.0).detach();

    let fused = swiglu(gate.clone(), up.clone());
    let grads = (fused.clone() * weights.clone()).sum().backward();
    let (dgate, dup) = (
        values(&gate.grad(&grads).unwrap()),
        values(&up.grad(&grads).unwrap()),
    );

    let reference = silu(gate.clone()) * up.clone();
    let grads = (reference.clone() * weights).sum().backward();
    assert_close("output", &values(&fused), &values(&reference), 1e-6);
    assert_close("dgate", &dgate, &values(&gate.grad(&grads).unwrap()), 1e-5);
    assert_close("dup", &dup, &values(&up.grad(&grads).unwrap()), 1e-6);
}

#[test]
fn packed_matmul_matches_the_expanded_weight() {
    let (rows, inp, out) = (6, 128, 24);
    let dense = random([inp, out], 11, 1.0).detach();
    for dtype in [BaseDtype::Bf16, BaseDtype::Int8, BaseDtype::Int4] {
        let packed = Arc::new(PackedWeight::pack(&values(&dense), inp, out, dtype));
        let expanded =
            Tensor::<2>::from_data(TensorData::new(packed.unpack(), [inp, out]), &device());
        let x = random([2, rows / 2, inp], 12, 1.0);
        let weights = random([2, rows / 2, out], 13, 1.0).detach();

        let fused = packed_matmul(x.clone(), packed);
        let grads = (fused.clone() * weights.clone()).sum().backward();
        let dx = values(&x.grad(&grads).unwrap());

        let reference = x.clone().matmul(expanded.unsqueeze::<3>());
        let grads = (reference.clone() * weights).sum().backward();
        assert_close("output", &values(&fused), &values(&reference), 1e-6);
        assert_close("dx", &dx, &values(&x.grad(&grads).unwrap()), 1e-6);
    }
}

#[test]
fn fused_ops_run_without_autodiff() {
    let flex = Device::flex();
    let q = Tensor::<4>::ones([1, 2, 3, 4], &flex);
    let v = Tensor::<4>::from_data(
        TensorData::new((0..12).map(|i| i as f32).collect(), [1, 1, 3, 4]),
        &flex,
    );
    let out = causal_attention(q, Tensor::ones([1, 1, 3, 4], &flex), v, None);
    // Equal scores: each position averages the values it may see.
    let rows = values(&out);
    assert_eq!(&rows[..4], &[0.0, 1.0, 2.0, 3.0]);
    assert_close("row 1", &rows[4..8], &[2.0, 3.0, 4.0, 5.0], 1e-6);
    assert_close("row 2", &rows[8..12], &[4.0, 5.0, 6.0, 7.0], 1e-6);
}
