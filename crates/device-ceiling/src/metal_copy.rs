//! The Metal ceiling: blit copies between two private buffers of the
//! system's default GPU.

use anyhow::{ensure, Context, Result};
use bench_core::ceiling::time_passes;
use bench_core::{Ceiling, DeviceKind};
use metal::{Device, MTLCommandBufferStatus, MTLResourceOptions};

use crate::{buffer_bytes, COPIES_PER_PASS};

/// The default Metal device's copy bandwidth.
pub fn ceiling() -> Result<Ceiling> {
    let device = Device::system_default().context("no Metal device on this machine")?;
    let bytes = buffer_bytes(device.recommended_max_working_set_size());
    let options = MTLResourceOptions::StorageModePrivate;
    let source = device.new_buffer(bytes as u64, options);
    let target = device.new_buffer(bytes as u64, options);
    let queue = device.new_command_queue();
    let samples = time_passes(|| {
        // The command buffer and its encoder are autoreleased: one pool a
        // pass, so that none piles up.
        metal::objc::rc::autoreleasepool(|| {
            let commands = queue.new_command_buffer();
            let blit = commands.new_blit_command_encoder();
            for _ in 0..COPIES_PER_PASS {
                blit.copy_from_buffer(&source, 0, &target, 0, bytes as u64);
            }
            blit.end_encoding();
            commands.commit();
            commands.wait_until_completed();
            let status = commands.status();
            ensure!(
                matches!(status, MTLCommandBufferStatus::Completed),
                "Metal: the blit copy ended as {status:?}"
            );
            Ok(())
        })
    })?;
    let probe = format!(
        "Metal blit copy, 2 x {} MiB private buffers, {COPIES_PER_PASS} copies a pass, {}",
        bytes >> 20,
        device.name()
    );
    let moved = (2 * bytes * COPIES_PER_PASS) as f64;
    Ceiling::of_samples(DeviceKind::Gpu, &samples, moved, probe)
}
