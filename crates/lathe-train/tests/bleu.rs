//! BLEU matches sacrebleu's `sentence_bleu` on 20 hand-picked pairs (references made
//! by `bench/reference/make_bleu_reference.py`).

use lathe_train::metrics::sentence_bleu;

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("reference/bleu_sacrebleu.json")).unwrap();
    assert_eq!(cases.len(), 20);
    for case in cases {
        let (h, r) = (
            case["hypothesis"].as_str().unwrap(),
            case["reference"].as_str().unwrap(),
        );
        let expected = case["bleu"].as_f64().unwrap();
        let got = sentence_bleu(h, r);
        assert!(
            (got - expected).abs() <= 1e-6,
            "{h:?} vs {r:?}: {got} != {expected}"
        );
    }
}
