//! ggml block dequantization against llama.cpp's `gguf` Python package
//! (fixtures made by `bench/reference/make_quant_fixtures.py`).

use lathe_model::gguf::{dequantize, GgmlType};

#[test]
fn blocks_dequantize_as_gguf_py_does() {
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("reference/quant_blocks.json")).unwrap();
    let mut seen = Vec::new();
    for f in fixtures.as_array().unwrap() {
        let name = f["type"].as_str().unwrap();
        let ty = match name {
            "Q4_0" => GgmlType::Q4_0,
            "Q4_1" => GgmlType::Q4_1,
            "Q5_0" => GgmlType::Q5_0,
            "Q5_1" => GgmlType::Q5_1,
            "Q8_0" => GgmlType::Q8_0,
            "Q4_K" => GgmlType::Q4_K,
            "Q5_K" => GgmlType::Q5_K,
            "Q6_K" => GgmlType::Q6_K,
            other => panic!("unexpected fixture type {other}"),
        };
        let bytes: Vec<u8> = f["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        let want: Vec<f64> = f["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = dequantize(ty, &bytes, want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{name} value {i}: {g} vs {w}"
            );
        }
        seen.push(name.to_string());
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
}
