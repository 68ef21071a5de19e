//! The CPU's copy bandwidth, measured without either framework, so that
//! both twins' generation speed is compared against the same ceiling (on
//! the CPU, MLX's elementwise kernels use one thread and PyTorch's use all
//! of them: their own y = 2x would measure the frameworks, not the memory).

/// STREAM's "scale", y = 2x, over float32 buffers split across threads.
pub struct HostScale {
    x: Vec<f32>,
    y: Vec<f32>,
    threads: usize,
}

impl HostScale {
    /// Both buffers are written here, so that page faults stay out of the
    /// timed passes.
    pub fn new(elements: usize, threads: usize) -> Self {
        Self {
            x: vec![1.0; elements],
            y: vec![0.0; elements],
            threads: threads.max(1),
        }
    }

    /// Bytes read plus bytes written by one pass.
    pub fn bytes(&self) -> f64 {
        (2 * self.x.len() * std::mem::size_of::<f32>()) as f64
    }

    /// One pass over the buffers.
    pub fn run(&mut self) {
        let chunk = self.x.len().div_ceil(self.threads).max(1);
        std::thread::scope(|scope| {
            for (x, y) in self.x.chunks(chunk).zip(self.y.chunks_mut(chunk)) {
                scope.spawn(move || {
                    for (out, value) in y.iter_mut().zip(x) {
                        *out = 2.0 * value;
                    }
                });
            }
        });
    }

    /// An element of the result, so the pass cannot be optimised away.
    pub fn probe(&self, index: usize) -> f32 {
        self.y[index % self.y.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_doubled() {
        let mut scale = HostScale::new(1001, 3);
        scale.run();
        assert!((0..1001).all(|i| scale.probe(i) == 2.0));
        assert_eq!(scale.bytes(), 2.0 * 1001.0 * 4.0);
    }
}
