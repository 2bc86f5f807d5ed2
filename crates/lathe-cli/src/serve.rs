//! `lathe serve`: the studio server.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lathe_server::ServeOptions;
use lathe_studio::StudioOptions;

/// Arguments of `lathe serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Workspace folder: datasets, experiments, the registry.
    #[arg(long, env = "LATHE_WORKDIR", default_value = "lathe-workspace")]
    workdir: PathBuf,
    /// Address to listen on; another than loopback needs --token.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 10101)]
    port: u16,
    /// Token every request must carry (`Authorization: Bearer <token>`).
    #[arg(long, env = "LATHE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Experiments that train at once.
    #[arg(long, default_value_t = 1)]
    max_jobs: usize,
    /// Largest dataset upload, MiB.
    #[arg(long, default_value_t = 10240)]
    max_upload_mb: u64,
    /// Seconds a stopped run may take to save its checkpoint before it is killed.
    #[arg(long, default_value_t = 30)]
    stop_grace: u64,
    /// Minutes the chat model stays loaded unused.
    #[arg(long, default_value_t = 10)]
    chat_idle_minutes: u64,
}

/// Runs `lathe serve` until Ctrl-C.
pub fn run_serve(args: ServeArgs) -> Result<()> {
    std::fs::create_dir_all(&args.workdir)
        .with_context(|| format!("creating {}", args.workdir.display()))?;
    let root = args.workdir.canonicalize()?;
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        token: args.token.filter(|t| !t.is_empty()),
        max_upload: args.max_upload_mb << 20,
        chat_idle: Duration::from_secs(args.chat_idle_minutes * 60),
        studio: StudioOptions {
            root: root.clone(),
            worker: std::env::current_exe().context("locating the lathe binary")?,
            max_jobs: args.max_jobs.max(1),
            stop_grace: Duration::from_secs(args.stop_grace),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(lathe_server::serve(options, |addr| {
        // The first line of stdout is the address (tests and scripts read it).
        println!("lathe studio listening on http://{addr}");
        eprintln!("workspace: {}", root.display());
    }))
}
