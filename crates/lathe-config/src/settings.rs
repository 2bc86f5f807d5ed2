//! Every setting of the causal language modeling problem type, defined once: field,
//! type, default, accepted values, tooltip, grid values and visibility. The typed
//! structs, the schema, the YAML keys and the command-line overrides all come from
//! the table below. Names and defaults follow H2O LLM Studio 1.14 (`cfg.yaml`).

use serde_yaml_ng::Value;

use crate::spec::{choice, float, float_from, int, int_from, list, suggest, Spec, BOOL, TEXT};
use crate::value::SettingValue;

fn s(text: &str) -> String {
    text.to_string()
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

macro_rules! settings {
    ($(
        $(#[$meta:meta])*
        $Group:ident $name:literal {
            $( $field:ident : $ty:ty = $default:expr , $kind:expr , $tip:literal $(, $opt:ident = $optv:expr)* ; )*
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Group {
                $( #[doc = $tip] pub $field: $ty, )*
            }

            impl Default for $Group {
                fn default() -> Self {
                    Self { $( $field: $default, )* }
                }
            }

            impl $Group {
                /// The YAML group name (empty for top-level keys).
                pub const NAME: &'static str = $name;

                fn specs(out: &mut Vec<Spec>) {
                    $(
                        #[allow(unused_mut)]
                        let mut spec = Spec {
                            group: $name,
                            key: stringify!($field),
                            kind: $kind,
                            default: SettingValue::to_value(&{ let d: $ty = $default; d }),
                            tooltip: $tip,
                            grid: &[],
                            shown_if: "",
                            gpu_only: false,
                            hidden: false,
                        };
                        $( spec.$opt = $optv; )*
                        out.push(spec);
                    )*
                }

                fn get(&self, key: &str) -> Option<Value> {
                    match key {
                        $( stringify!($field) => Some(SettingValue::to_value(&self.$field)), )*
                        _ => None,
                    }
                }

                /// `None` for an unknown key; otherwise whether the value could be read.
                fn set(&mut self, key: &str, value: &Value) -> Option<Result<(), String>> {
                    match key {
                        $( stringify!($field) => Some(
                            <$ty as SettingValue>::from_value(value).map(|v| self.$field = v)
                        ), )*
                        _ => None,
                    }
                }
            }
        )*

    };
}

const LM_METRICS: &[&str] = &["GPT", "BLEU", "Perplexity"];
const LR_GRID: &[&str] = &["1e-6", "5e-6", "1e-5", "5e-5", "1e-4", "3e-4", "5e-4"];
const PROB_GRID: &[&str] = &["0.0", "0.1", "0.2", "0.3"];

settings! {
    /// Top-level keys of `cfg.yaml`.
    General "" {
        experiment_name: String = s(""), TEXT,
            "Name of the run and of its output folder; empty: a name from the date and time";
        llm_backbone: String = s("demo"), suggest(&[
            "demo", "HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
            "h2oai/h2o-danube3-500m-base", "h2oai/h2o-danube3-500m-chat",
            "meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2-0.5B-Instruct",
            "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "mistralai/Mistral-7B-Instruct-v0.2",
        ]),
            "Pretrained model: `demo`, a Hub id, a local Hugging Face folder or a .gguf file";
        output_directory: String = s(""), TEXT,
            "Run folder; empty: output/<experiment_name>", hidden = true;
        problem_type: String = s("text_causal_language_modeling"), choice(&[
            "text_causal_language_modeling", "text_causal_classification_modeling",
            "text_causal_regression_modeling", "text_sequence_to_sequence_modeling",
            "text_dpo_modeling",
        ]),
            "What the model learns: next-token prediction on answers (causal language modeling) or another problem type";
    }

    /// How the data file becomes training samples.
    Dataset "dataset" {
        personalize: bool = false, BOOL,
            "Replace names such as 'OpenAI' or 'ChatGPT' in the data with the chatbot's name and author";
        chatbot_name: String = s("h2oGPT"), TEXT,
            "Name the model calls itself when personalize is on", shown_if = "dataset.personalize";
        chatbot_author: String = s("H2O.ai"), TEXT,
            "Author the model names when personalize is on", shown_if = "dataset.personalize";
        train_dataframe: String = s("/path/to/train.csv"), TEXT,
            "Training data: a CSV, Parquet, JSON or JSONL file";
        validation_strategy: String = s("automatic"), choice(&["custom", "automatic"]),
            "custom: a separate validation file; automatic: hold out part of the training data";
        validation_dataframe: Option<String> = None, TEXT,
            "Validation data file (validation_strategy custom)",
            shown_if = "dataset.validation_strategy=custom";
        validation_size: f64 = 0.01, float(0.01, 0.95, 0.01),
            "Fraction of the training data held out for validation (automatic)",
            shown_if = "dataset.validation_strategy=automatic";
        data_sample: f64 = 1.0, float(0.01, 1.0, 0.01),
            "Fraction of the data used, for quick experiments";
        data_sample_choice: Vec<String> = v(&["Train", "Validation"]),
            list(&["Train", "Validation"], false),
            "Which splits data_sample applies to", shown_if = "dataset.data_sample<1";
        system_column: Option<String> = None, TEXT,
            "Column with a system message per conversation; None: no system message";
        prompt_column: Vec<String> = v(&["instruction", "input"]), list(&[], true),
            "Column(s) with the prompt; several are joined with prompt_column_separator";
        prompt_column_separator: String = s("\\n\\n"), TEXT,
            "Text between prompt columns (escape sequences such as \\n decoded)";
        answer_column: String = s("output"), TEXT,
            "Column with the answer the model learns to give";
        parent_id_column: Option<String> = None, TEXT,
            "Column with the id of the previous turn, chaining rows into conversations; None: each row alone";
        id_column: Option<String> = some("id"), TEXT,
            "Column with each row's id (with parent_id_column)", shown_if = "dataset.parent_id_column";
        use_chat_template: bool = false, BOOL,
            "Render conversations with the backbone's own chat template instead of the text markers below (the template decides markers and EOS)";
        text_system_start: String = s("<|system|>"), TEXT,
            "Text put before the system message", shown_if = "dataset.system_column";
        text_prompt_start: String = s("<|prompt|>"), TEXT,
            "Text put before each prompt";
        text_answer_separator: String = s("<|answer|>"), TEXT,
            "Text put between a prompt and its answer";
        add_eos_token_to_system: bool = true, BOOL,
            "End the system message with the EOS token", shown_if = "dataset.system_column";
        add_eos_token_to_prompt: bool = true, BOOL,
            "End each prompt with the EOS token";
        add_eos_token_to_answer: bool = true, BOOL,
            "End each answer with the EOS token, so the model learns to stop";
        limit_chained_samples: bool = false, BOOL,
            "Only complete conversations become samples (no partial chains)",
            shown_if = "dataset.parent_id_column";
        mask_prompt_labels: bool = true, BOOL,
            "Compute the loss only on answers, not on system and prompt tokens";
        only_last_answer: bool = false, BOOL,
            "Compute the loss only on the last answer of a conversation",
            shown_if = "dataset.mask_prompt_labels";
    }

    /// How text becomes tokens.
    TokenizerSettings "tokenizer" {
        max_length: i64 = 512, int(32, 16384),
            "Most tokens per sample (whole conversation); longer samples keep their end",
            grid = &["256", "512", "1024"];
        add_prompt_answer_tokens: bool = false, BOOL,
            "Add the prompt and answer markers to the vocabulary as new tokens";
        padding_quantile: f64 = 1.0, float(0.0, 1.0, 0.01),
            "Cut each training batch to this quantile of its lengths (1: the longest; 0: pad to max_length)";
        tokenizer_kwargs: String = s("{\"use_fast\": true, \"add_prefix_space\": false}"), TEXT,
            "Extra tokenizer options as JSON (Hugging Face from_pretrained arguments)";
    }

    /// The model and how its weights are stored.
    Architecture "architecture" {
        backbone_dtype: String = s("int4"),
            choice(&["float32", "bfloat16", "float16", "int8", "int4"]),
            "Storage of the frozen base weights: float32/bfloat16/float16, or int8 / int4 (4-bit blocks) quantized";
        gradient_checkpointing: bool = true, BOOL,
            "Recompute activations during the backward pass to save memory";
        intermediate_dropout: f64 = 0.0, float(0.0, 0.5, 0.05),
            "Dropout on the decoder's hidden states during training",
            grid = &["0.0", "0.05", "0.1", "0.15"];
        pretrained_weights: String = s(""), TEXT,
            "Start from the weights of an earlier run (its folder or checkpoint)";
    }

    /// The optimisation.
    Training "training" {
        loss_function: String = s("TokenAveragedCrossEntropy"),
            choice(&["TokenAveragedCrossEntropy", "SampleAveragedCrossEntropy"]),
            "Cross-entropy averaged over all answer tokens of a batch, or per sample first",
            grid = &["TokenAveragedCrossEntropy", "SampleAveragedCrossEntropy"];
        optimizer: String = s("AdamW"),
            choice(&["Adadelta", "Adam", "AdamW", "AdamW8bit", "RMSprop", "SGD"]),
            "Optimizer (SGD: Nesterov momentum 0.9; RMSprop: momentum 0.9, alpha 0.9)";
        learning_rate: f64 = 1e-4, float_from(1e-9, 1e-6),
            "Peak learning rate", grid = LR_GRID;
        differential_learning_rate_layers: Vec<String> = v(&[]),
            list(&["backbone", "embed", "head"], true),
            "Parameter names containing these texts get differential_learning_rate";
        differential_learning_rate: f64 = 1e-5, float_from(1e-9, 1e-6),
            "Learning rate of the differential layers", grid = LR_GRID,
            shown_if = "training.differential_learning_rate_layers";
        freeze_layers: Vec<String> = v(&[]), list(&["embed", "layer", "head"], true),
            "Parameter names containing these texts stay frozen (full fine-tuning)",
            shown_if = "training.lora!=true";
        attention_implementation: String = s("auto"),
            choice(&["auto", "eager", "flash_attention_2", "sdpa"]),
            "Attention kernel (GPU choice; Lathe picks its own on CPU)", gpu_only = true;
        batch_size: i64 = 2, int(1, 256),
            "Samples per optimizer micro-step",
            grid = &["1", "2", "4", "8", "16", "32", "64"];
        epochs: i64 = 1, int(0, 50),
            "Passes over the training data; 0: evaluate only", grid = &["1", "2", "4"];
        schedule: String = s("Cosine"), choice(&["Constant", "Cosine", "Linear"]),
            "Learning-rate schedule after the linear warmup";
        min_learning_rate_ratio: f64 = 0.0, float(0.0, 0.1, 0.0001),
            "Lowest learning rate as a fraction of the peak", shown_if = "training.schedule!=Constant";
        warmup_epochs: f64 = 0.0, float(0.0, 5.0, 0.05),
            "Epochs of linear warmup from 0 to the peak learning rate", grid = &["0.0", "0.25"];
        weight_decay: f64 = 0.0, float_from(0.0, 1e-5),
            "Decoupled weight decay (not on biases and norm weights)",
            grid = &["0.0", "0.01", "0.1", "0.2"];
        gradient_clip: f64 = 0.0, float(0.0, 10.0, 0.1),
            "Largest global gradient norm; 0: no clipping",
            grid = &["0.0", "0.5", "1.0", "2.0", "4.0", "8.0"];
        grad_accumulation: i64 = 1, int(1, 8),
            "Micro-batches per optimizer step", grid = &["1", "2", "4", "8", "16", "32"];
        lora: bool = true, BOOL,
            "Train low-rank adapters instead of all weights";
        use_dora: bool = false, BOOL,
            "Weight-decomposed LoRA (DoRA): also learn each output's magnitude", shown_if = "training.lora";
        lora_r: i64 = 4, int(1, 256),
            "Rank of the adapters", shown_if = "training.lora",
            grid = &["2", "4", "8", "16", "32", "64", "128"];
        lora_alpha: i64 = 16, int(1, 256),
            "Adapter scale numerator (scale = alpha / r)", shown_if = "training.lora",
            grid = &["4", "8", "16", "32", "64", "128", "256"];
        lora_dropout: f64 = 0.05, float(0.0, 0.5, 0.01),
            "Dropout on the adapters' input", shown_if = "training.lora";
        use_rslora: bool = false, BOOL,
            "Rank-stabilised scale alpha / sqrt(r)", shown_if = "training.lora";
        lora_target_modules: String = s(""), TEXT,
            "Comma-separated layer names that get adapters; empty: every linear layer except the head",
            shown_if = "training.lora";
        lora_unfreeze_layers: Vec<String> = v(&[]), list(&["embed", "head"], true),
            "Base weights trained fully besides the adapters", shown_if = "training.lora";
        save_checkpoint: String = s("last"),
            choice(&["last", "best", "each_evaluation_epoch", "disable"]),
            "Which weights to keep: the last, the best by the validation metric, one per evaluation, or none";
        evaluation_epochs: f64 = 1.0, float(0.01, 1.0, 0.01),
            "Validate every this fraction of an epoch";
        evaluate_before_training: bool = false, BOOL,
            "Validate once before the first step";
        train_validation_data: bool = false, BOOL,
            "Also train on the validation rows";
        drop_last_batch: bool = true, BOOL,
            "Skip the last incomplete batch of an epoch", hidden = true;
    }

    /// Random changes to training samples.
    Augmentation "augmentation" {
        token_mask_probability: f64 = 0.0, float(0.0, 0.9, 0.05),
            "Probability of hiding each input token from the model", grid = PROB_GRID;
        skip_parent_probability: f64 = 0.0, float(0.0, 1.0, 0.05),
            "Probability of dropping each earlier turn of a conversation", grid = PROB_GRID;
        random_parent_probability: f64 = 0.0, float(0.0, 1.0, 0.05),
            "Probability of replacing the earlier turns with a random other row", grid = PROB_GRID;
        neftune_noise_alpha: f64 = 0.0, float(0.0, 15.0, 0.05),
            "NEFTune: uniform noise of this scale on the input embeddings while training",
            grid = &["0.0", "5.0", "10.0", "15.0"];
    }

    /// Validation metric and generation of answers.
    Prediction "prediction" {
        metric: String = s("GPT"), choice(LM_METRICS),
            "Validation metric: GPT (an LLM judge), BLEU, or Perplexity";
        metric_gpt_model: String = s("gpt-3.5-turbo-0301"), suggest(&[
            "gpt-3.5-turbo-0301", "gpt-3.5-turbo-0613", "gpt-4-0314", "gpt-4-0613",
            "gpt-4-1106-preview",
        ]),
            "Judge model for the GPT metric", shown_if = "prediction.metric=GPT";
        metric_gpt_template: String = s("general"), choice(&["general", "mt-bench", "rag"]),
            "Judge prompt for the GPT metric", shown_if = "prediction.metric=GPT";
        min_length_inference: i64 = 2, int(0, 1024),
            "Fewest new tokens when generating";
        max_length_inference: i64 = 256, int(1, 4096),
            "Most new tokens when generating";
        max_time: f64 = 0.0, float(0.0, 600.0, 1.0),
            "Seconds a generation may take; 0: no limit";
        batch_size_inference: i64 = 0, int(0, 512),
            "Samples per generation batch; 0: the training batch size";
        do_sample: bool = false, BOOL,
            "Sample tokens instead of choosing the most likely";
        num_beams: i64 = 1, int(1, 4),
            "Beam search width (1: none)";
        temperature: f64 = 0.0, float(0.0, 10.0, 0.05),
            "Sampling temperature", shown_if = "prediction.do_sample";
        repetition_penalty: f64 = 1.0, float(1.0, 10.0, 0.025),
            "Penalty on tokens already present (1: none)";
        stop_tokens: String = s(""), TEXT,
            "Comma-separated texts that end generation";
        top_k: i64 = 0, int(0, 100),
            "Sample only from the k most likely tokens (0: all)", shown_if = "prediction.do_sample";
        top_p: f64 = 1.0, float(0.5, 1.0, 0.05),
            "Sample only from the most likely tokens covering this probability",
            shown_if = "prediction.do_sample";
        num_history: i64 = 4, int(1, 50),
            "Previous chat turns kept in the prompt when chatting";
    }

    /// Where and how the run executes.
    Environment "environment" {
        gpus: Vec<String> = v(&[]), list(&[], true),
            "GPU ids to use", gpu_only = true;
        mixed_precision: bool = true, BOOL,
            "Compute in half precision (GPU)", gpu_only = true;
        mixed_precision_dtype: String = s("bfloat16"), choice(&["bfloat16", "float16"]),
            "Half-precision type", gpu_only = true, shown_if = "environment.mixed_precision";
        compile_model: bool = false, BOOL,
            "Compile the model (torch.compile)", gpu_only = true;
        use_deepspeed: bool = false, BOOL,
            "Shard the model over GPUs with DeepSpeed ZeRO", gpu_only = true;
        deepspeed_method: String = s("ZeRO2"), choice(&["ZeRO2", "ZeRO3"]),
            "DeepSpeed ZeRO stage", gpu_only = true, shown_if = "environment.use_deepspeed";
        deepspeed_allgather_bucket_size: f64 = 1e6, float_from(1e6, 1e6),
            "DeepSpeed all-gather bucket size", gpu_only = true, shown_if = "environment.use_deepspeed";
        deepspeed_reduce_bucket_size: f64 = 1e6, float_from(1e6, 1e6),
            "DeepSpeed reduce bucket size", gpu_only = true, shown_if = "environment.use_deepspeed";
        deepspeed_stage3_prefetch_bucket_size: f64 = 1e6, float_from(1e6, 1e6),
            "DeepSpeed ZeRO3 prefetch bucket size", gpu_only = true,
            shown_if = "environment.deepspeed_method=ZeRO3";
        deepspeed_stage3_param_persistence_threshold: f64 = 1e6, float_from(1e6, 1e6),
            "DeepSpeed ZeRO3 parameter persistence threshold", gpu_only = true,
            shown_if = "environment.deepspeed_method=ZeRO3";
        find_unused_parameters: bool = false, BOOL,
            "DDP flag for models with unused parameters", gpu_only = true;
        trust_remote_code: bool = true, BOOL,
            "Allow model code from the Hub (Lathe runs no remote code; its own model code is used)";
        huggingface_branch: String = s("main"), TEXT,
            "Revision of the Hub model";
        number_of_workers: i64 = 4, int(1, 256),
            "Data loader workers";
        threads: i64 = 0, int(0, 1024),
            "CPU threads for tensor math; 0: all cores";
        seed: i64 = -1, int_from(-1),
            "Random seed; -1: a random one, recorded in the run's cfg.yaml";
    }

    /// What the run reports.
    Logging "logging" {
        log_step_size: String = s("absolute"), choice(&["absolute", "relative"]),
            "Chart x-axis: samples seen, or fraction of training";
        log_all_ranks: bool = false, BOOL,
            "Log from every distributed process", gpu_only = true;
        logger: String = s("None"), choice(&["None", "Neptune", "W&B"]),
            "External experiment tracker";
        neptune_project: String = s(""), TEXT,
            "Neptune project", shown_if = "logging.logger=Neptune";
        wandb_project: String = s(""), TEXT,
            "Weights & Biases project", shown_if = "logging.logger=W&B";
        wandb_entity: String = s(""), TEXT,
            "Weights & Biases entity", shown_if = "logging.logger=W&B";
    }
}

/// A complete experiment configuration (causal language modeling).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Top-level keys.
    pub general: General,
    /// `dataset:` group.
    pub dataset: Dataset,
    /// `tokenizer:` group.
    pub tokenizer: TokenizerSettings,
    /// `architecture:` group.
    pub architecture: Architecture,
    /// `training:` group.
    pub training: Training,
    /// `augmentation:` group.
    pub augmentation: Augmentation,
    /// `prediction:` group.
    pub prediction: Prediction,
    /// `environment:` group.
    pub environment: Environment,
    /// `logging:` group.
    pub logging: Logging,
}

/// Group names in file order.
pub const GROUPS: &[&str] = &[
    Dataset::NAME,
    TokenizerSettings::NAME,
    Architecture::NAME,
    Training::NAME,
    Augmentation::NAME,
    Prediction::NAME,
    Environment::NAME,
    Logging::NAME,
];

impl Config {
    /// Every setting, in form order.
    pub fn schema() -> Vec<Spec> {
        let mut out = Vec::new();
        General::specs(&mut out);
        Dataset::specs(&mut out);
        TokenizerSettings::specs(&mut out);
        Architecture::specs(&mut out);
        Training::specs(&mut out);
        Augmentation::specs(&mut out);
        Prediction::specs(&mut out);
        Environment::specs(&mut out);
        Logging::specs(&mut out);
        out
    }

    /// The value of `group.key` (or a top-level `key`).
    pub fn get(&self, path: &str) -> Option<Value> {
        let (group, key) = split_path(path);
        match group {
            "" => self.general.get(key),
            "dataset" => self.dataset.get(key),
            "tokenizer" => self.tokenizer.get(key),
            "architecture" => self.architecture.get(key),
            "training" => self.training.get(key),
            "augmentation" => self.augmentation.get(key),
            "prediction" => self.prediction.get(key),
            "environment" => self.environment.get(key),
            "logging" => self.logging.get(key),
            _ => None,
        }
    }

    /// Sets `group.key` without range checks: `None` when the key is unknown,
    /// `Some(Err)` when the value has the wrong type.
    pub(crate) fn set_unchecked(
        &mut self,
        path: &str,
        value: &Value,
    ) -> Option<Result<(), String>> {
        let (group, key) = split_path(path);
        match group {
            "" => self.general.set(key, value),
            "dataset" => self.dataset.set(key, value),
            "tokenizer" => self.tokenizer.set(key, value),
            "architecture" => self.architecture.set(key, value),
            "training" => self.training.set(key, value),
            "augmentation" => self.augmentation.set(key, value),
            "prediction" => self.prediction.set(key, value),
            "environment" => self.environment.set(key, value),
            "logging" => self.logging.set(key, value),
            _ => None,
        }
    }
}

/// The setting at `group.key` (schema built once).
pub(crate) fn spec(path: &str) -> Option<&'static Spec> {
    static SCHEMA: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(Config::schema)
        .iter()
        .find(|s| s.path() == path)
}

/// `"training.epochs"` → `("training", "epochs")`; `"llm_backbone"` → `("", "llm_backbone")`.
fn split_path(path: &str) -> (&str, &str) {
    path.split_once('.').unwrap_or(("", path))
}
