//! System statistics for the home page: CPU, memory, the workspace's disk, GPUs.

use std::path::Path;
use std::process::Command;

use serde::Serialize;
use sysinfo::{Disks, System};
use utoipa::ToSchema;

/// What the machine is doing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemStats {
    /// Logical CPUs.
    pub cpus: usize,
    /// CPU load, 0–100 %, over a short sample.
    pub cpu_percent: f32,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory in all, bytes.
    pub memory_total: u64,
    /// Used bytes of the disk that holds the workspace.
    pub disk_used: u64,
    /// Size of that disk, bytes.
    pub disk_total: u64,
    /// GPUs (NVIDIA, through `nvidia-smi`); empty without any.
    pub gpus: Vec<Gpu>,
}

/// One GPU.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gpu {
    /// Index.
    pub index: u32,
    /// Model name.
    pub name: String,
    /// Load, 0–100 %.
    pub utilization_percent: f32,
    /// Memory in use, bytes.
    pub memory_used: u64,
    /// Memory in all, bytes.
    pub memory_total: u64,
}

/// GPUs that `nvidia-smi` reports; none when it is missing or fails.
fn gpus() -> Vec<Gpu> {
    let Ok(out) = Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
            "--format=csv,noheader,nounits",
        ])
        .output()
    else {
        return Vec::new();
    };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let mib = |s: &str| s.parse::<u64>().ok().map(|m| m << 20);
            Some(Gpu {
                index: f.first()?.parse().ok()?,
                name: f.get(1)?.to_string(),
                utilization_percent: f.get(2)?.parse().unwrap_or(0.0),
                memory_used: mib(f.get(3)?)?,
                memory_total: mib(f.get(4)?)?,
            })
        })
        .collect()
}

/// Samples the machine (takes about 200 ms for the CPU load).
pub fn system_stats(workspace: &Path) -> SystemStats {
    let mut sys = System::new();
    sys.refresh_cpu_usage();
    std::thread::sleep(
        sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(std::time::Duration::from_millis(200)),
    );
    sys.refresh_cpu_usage();
    sys.refresh_memory();
    let disks = Disks::new_with_refreshed_list();
    let workspace = workspace
        .canonicalize()
        .unwrap_or_else(|_| workspace.to_path_buf());
    let disk = disks
        .list()
        .iter()
        .filter(|d| workspace.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len());
    SystemStats {
        cpus: sys.cpus().len(),
        cpu_percent: sys.global_cpu_usage(),
        memory_used: sys.used_memory(),
        memory_total: sys.total_memory(),
        disk_used: disk.map_or(0, |d| d.total_space() - d.available_space()),
        disk_total: disk.map_or(0, |d| d.total_space()),
        gpus: gpus(),
    }
}

/// Memory available for new allocations, bytes.
pub fn available_memory() -> u64 {
    let mut sys = System::new();
    sys.refresh_memory();
    sys.available_memory()
}
