//! Allocator tuning for tensor workloads.

/// Lets glibc's malloc reuse freed tensor buffers instead of unmapping them.
///
/// A training step allocates and frees hundreds of buffers of a few megabytes. Above
/// its (adaptive) mmap threshold glibc maps each one fresh and unmaps it on free, so
/// every step pays page faults and kernel zeroing for them: about 12 % of a LoRA step
/// on the demo model. Serving allocations up to 32 MiB from the heap removes that cost
/// at the same peak memory. A no-op where the C library is not glibc.
pub fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; it is called before any
    // tensor is allocated and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Keeps memory that a training step frees for the next step instead of handing it
/// back to the system.
///
/// glibc returns the top of its heap to the system once more than 128 KiB is free
/// there, which at the end of every step is the whole step's activations; the next
/// step then faults them back in page by page and the kernel zeroes each page (about
/// 160,000 page faults per LoRA step on the demo model). Training processes keep it:
/// their peak memory is the same, they just do not shrink between steps. A no-op where
/// the C library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: as above; -1 is glibc's documented value for "never trim".
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
