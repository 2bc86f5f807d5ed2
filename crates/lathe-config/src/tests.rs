use super::*;

#[test]
fn defaults_round_trip_through_yaml() {
    let config = Config::default();
    let text = config.to_yaml();
    let loaded = Config::from_yaml_str(&text, "defaults").unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    assert_eq!(loaded.config, config);
    config.validate().unwrap();
}

#[test]
fn every_default_is_in_range_and_keys_are_unique() {
    let schema = Config::schema();
    let mut paths: Vec<String> = schema.iter().map(Spec::path).collect();
    for spec in &schema {
        spec.check(&spec.default)
            .unwrap_or_else(|e| panic!("{}: default outside {e}", spec.path()));
        assert!(!spec.tooltip.is_empty(), "{} has no tooltip", spec.path());
    }
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), schema.len());
}

/// H2O LLM Studio's own CPU integration-test config, unchanged (keys as H2O writes them,
/// including ones Lathe does not know).
const H2O_CFG: &str = r#"architecture:
  backbone_dtype: float32
  force_embedding_gradients: false
  gradient_checkpointing: false
  intermediate_dropout: 0.0
  pretrained: true
  pretrained_weights: ''
dataset:
  add_eos_token_to_answer: true
  answer_column: output
  data_sample: 0.01
  data_sample_choice:
  - Train
  - Validation
  parent_id_column: None
  prompt_column:
  - instruction
  system_column: None
  text_answer_separator: <|answer|>
  train_dataframe: /tmp/train_full.pq
  validation_dataframe: None
  validation_size: 0.1
environment:
  gpus:
  - ''
  mixed_precision: false
  seed: -1
experiment_name: test-causal-language-modeling-oasst-cpu
llm_backbone: h2oai/llama2-0b-unit-test
output_directory: /tmp/output
prediction:
  max_length_inference: 16
  max_time: 0.0
  metric: BLEU
  repetition_penalty: 1.2
  temperature: 0.3
problem_type: text_causal_language_modeling
tokenizer:
  max_length: 32
  max_length_answer: 16
  tokenizer_kwargs: '{"use_fast": true, "add_prefix_space": false}'
training:
  differential_learning_rate: 1.0e-05
  differential_learning_rate_layers: []
  learning_rate: 0.0001
  lora_target_modules: ''
  save_checkpoint: "last"
  warmup_epochs: 0.0
"#;

#[test]
fn reads_an_h2o_cfg_yaml_unchanged() {
    let loaded = Config::from_yaml_str(H2O_CFG, "cfg.yaml").unwrap();
    let c = &loaded.config;
    assert_eq!(c.general.llm_backbone, "h2oai/llama2-0b-unit-test");
    assert_eq!(c.dataset.prompt_column, vec!["instruction".to_string()]);
    assert_eq!(c.dataset.system_column, None);
    assert_eq!(c.dataset.validation_size, 0.1);
    assert_eq!(c.tokenizer.max_length, 32);
    assert_eq!(c.training.learning_rate, 1e-4);
    assert_eq!(c.prediction.metric, "BLEU");
    assert_eq!(c.environment.seed, -1);
    assert_eq!(c.architecture.backbone_dtype, "float32");
    assert_eq!(
        loaded.unknown_keys,
        vec![
            "architecture.force_embedding_gradients",
            "architecture.pretrained",
            "tokenizer.max_length_answer",
        ]
    );
    // `gpus: ['']` is an empty GPU list: nothing to report.
    assert!(c.gpu_only_settings_in_use().is_empty());
}

#[test]
fn out_of_range_values_name_key_value_and_range() {
    let err = Config::from_yaml_str("training:\n  lora_r: 0\n", "cfg.yaml").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cfg.yaml"), "{text}");
    assert!(text.contains("training.lora_r"), "{text}");
    assert!(text.contains("integer from 1 to 256"), "{text}");

    let err = Config::from_yaml_str("training:\n  optimizer: Adamw\n", "x").unwrap_err();
    assert!(
        err.to_string().contains("one of Adadelta, Adam, AdamW"),
        "{err}"
    );

    let err = Config::from_yaml_str("training:\n  epochs: many\n", "x").unwrap_err();
    assert!(err.to_string().contains("expected an integer"), "{err}");

    let err = Config::from_yaml_str("- a\n- b\n", "x").unwrap_err();
    assert!(err.to_string().contains("mapping"), "{err}");
}

#[test]
fn command_line_overrides_are_typed_and_checked() {
    let mut c = Config::default();
    c.apply_override("training.epochs", "2").unwrap();
    c.apply_override("training.learning_rate", "3e-4").unwrap();
    c.apply_override("training.lora", "False").unwrap();
    c.apply_override("dataset.prompt_column", "question,context")
        .unwrap();
    c.apply_override("llm_backbone", "demo").unwrap();
    assert_eq!(c.training.epochs, 2);
    assert_eq!(c.training.learning_rate, 3e-4);
    assert!(!c.training.lora);
    assert_eq!(c.dataset.prompt_column, vec!["question", "context"]);
    assert!(matches!(
        c.apply_override("training.epoch", "2"),
        Err(ConfigError::UnknownSetting(_))
    ));
    let before = c.clone();
    assert!(c.apply_override("training.lora_dropout", "0.9").is_err());
    assert_eq!(c, before, "a rejected value changes nothing");
}

#[test]
fn gpu_only_settings_are_reported_when_used() {
    let mut c = Config::default();
    c.apply_override("environment.gpus", "0,1").unwrap();
    c.apply_override("environment.use_deepspeed", "true")
        .unwrap();
    let used: Vec<String> = c
        .gpu_only_settings_in_use()
        .into_iter()
        .map(|u| u.0)
        .collect();
    assert!(used.contains(&"environment.gpus".to_string()));
    assert!(used.contains(&"environment.use_deepspeed".to_string()));
}

#[test]
fn conditions_of_dependent_settings_follow_the_values() {
    let spec = |path: &str| {
        Config::schema()
            .into_iter()
            .find(|s| s.path() == path)
            .unwrap()
    };
    let mut c = Config::default();
    assert!(c.applies(&spec("training.lora_r")));
    c.apply_override("training.lora", "false").unwrap();
    assert!(!c.applies(&spec("training.lora_r")));
    assert!(c.applies(&spec("training.freeze_layers")));
    assert!(c.applies(&spec("environment.mixed_precision_dtype")));
    c.apply_override("environment.mixed_precision", "false")
        .unwrap();
    assert!(!c.applies(&spec("environment.mixed_precision_dtype")));
    assert!(!c.applies(&spec("dataset.data_sample_choice")));
    c.apply_override("dataset.data_sample", "0.5").unwrap();
    assert!(c.applies(&spec("dataset.data_sample_choice")));
    // A setting under a setting that does not apply does not apply either.
    c.apply_override("environment.deepspeed_method", "ZeRO3")
        .unwrap();
    assert!(!c.applies(&spec("environment.deepspeed_stage3_prefetch_bucket_size")));
    c.apply_override("environment.use_deepspeed", "true")
        .unwrap();
    assert!(c.applies(&spec("environment.deepspeed_stage3_prefetch_bucket_size")));
}
