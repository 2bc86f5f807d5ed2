//! Lathe's model layer: backbones, weight I/O (safetensors, GGUF, Hub cache),
//! tokenizers, chat templates and generation. Only this crate and `lathe-train`
//! touch burn types; the rest of Lathe uses the types exported here.

pub mod allocator;
mod attention_kernel;
pub mod chat_template;
pub mod config;
mod elementwise_kernel;
pub mod engine;
pub mod error;
pub mod export;
mod fast_math;
pub mod fused;
pub mod gguf;
pub mod hub;
pub mod hub_upload;
pub mod linear;
pub mod llama;
pub mod loader;
pub mod quant;
pub mod sampling;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use chat_template::{ChatMessage, ChatTemplate};
pub use config::{LlamaConfig, RopeScaling};
pub use engine::{Engine, Generated, GeneratedText};
pub use error::{ModelError, Result};
pub use loader::load;
pub use sampling::GenerationConfig;
pub use tokenizer::Tokenizer;
