//! Weights as the twins take them: a safetensors tensor's bytes as
//! float32, exact for float16 and bfloat16.

use anyhow::{bail, Result};
use safetensors::Dtype;

/// Little-endian `bytes` of `dtype` as float32; an integer or other dtype
/// is an error that names it.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let words = |width: usize| bytes.chunks_exact(width);
    Ok(match dtype {
        Dtype::F32 => words(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => words(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => words(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => bail!("has dtype {other:?}; expected F32, F16 or BF16"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_files_are_widened() {
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::BF16, &bytes).unwrap(), [1.5, -2.0]);
        assert!(to_f32(Dtype::I64, &[0; 8]).is_err());
    }
}
