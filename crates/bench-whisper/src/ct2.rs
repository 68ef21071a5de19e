//! A reader for CTranslate2's `model.bin`, the offline copy's format.
//!
//! The layout (CTranslate2's `ModelSpec._serialize` and `Model::load`),
//! little-endian: u32 binary version; the spec name and u32 spec revision;
//! u32 variable count, then per variable its name, u8 rank, u32 dims, u8
//! dtype id, u32 byte count and the bytes; u32 alias count, then per alias
//! its name and the variable it stands for. A string is a u16 length
//! (counting a trailing NUL), the bytes and the NUL. Binary versions 4 to 6
//! share this layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;

/// The binary versions whose layout is the one above.
const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 4..=6;

/// CTranslate2's `DataType` ids, in the order of its `types.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ct2Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::I8 => 1,
        }
    }
}

/// One stored variable: a weight, or a scalar attribute (rank 0).
#[derive(Clone, Debug)]
pub struct Ct2Variable {
    pub shape: Vec<usize>,
    pub dtype: Ct2Dtype,
    pub bytes: Vec<u8>,
}

/// Every variable and alias of a `model.bin`.
#[derive(Clone, Debug)]
pub struct Ct2Model {
    pub path: PathBuf,
    pub binary_version: u32,
    /// E.g. "WhisperSpec".
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Ct2Variable>,
    /// Alias name -> the variable name it stands for.
    pub aliases: BTreeMap<String, String>,
}

impl Ct2Model {
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&bytes, path)
    }

    /// Parses the bytes of a `model.bin`; `path` only names it in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let mut reader = Reader { bytes, position: 0 };
        let context = || format!("reading the CTranslate2 model {}", path.display());
        let binary_version = reader.u32("binary version").with_context(context)?;
        ensure!(
            SUPPORTED_VERSIONS.contains(&binary_version),
            "{}: CTranslate2 binary version {binary_version} is not supported (this reader knows {SUPPORTED_VERSIONS:?})",
            path.display()
        );
        let spec = reader.string("spec name").with_context(context)?;
        let revision = reader.u32("spec revision").with_context(context)?;
        let count = reader.u32("variable count").with_context(context)?;
        let mut variables = BTreeMap::new();
        for index in 0..count {
            let (name, variable) = reader
                .variable()
                .with_context(|| format!("variable {index} of {count}"))
                .with_context(context)?;
            variables.insert(name, variable);
        }
        let alias_count = reader.u32("alias count").with_context(context)?;
        let mut aliases = BTreeMap::new();
        for _ in 0..alias_count {
            let alias = reader.string("alias name").with_context(context)?;
            let target = reader.string("alias target").with_context(context)?;
            aliases.insert(alias, target);
        }
        ensure!(
            reader.position == bytes.len(),
            "{}: {} unread bytes after the last alias: not a CTranslate2 model.bin",
            path.display(),
            bytes.len() - reader.position
        );
        Ok(Self {
            path: path.to_owned(),
            binary_version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// A variable by name, following an alias.
    pub fn variable(&self, name: &str) -> Result<&Ct2Variable> {
        let target = self.aliases.get(name).map_or(name, String::as_str);
        self.variables.get(target).with_context(|| {
            format!(
                "{} ({}) has no variable {name}",
                self.path.display(),
                self.spec
            )
        })
    }

    /// A floating-point variable as a float32 host tensor (exact for float16
    /// and bfloat16). Quantized (integer) weights are refused.
    pub fn tensor(&self, name: &str) -> Result<HostTensor> {
        let variable = self.variable(name)?;
        let dtype = match variable.dtype {
            Ct2Dtype::F32 => safetensors::Dtype::F32,
            Ct2Dtype::F16 => safetensors::Dtype::F16,
            Ct2Dtype::Bf16 => safetensors::Dtype::BF16,
            other => bail!(
                "{}: variable {name} is {other:?}; quantized CTranslate2 models are not supported (convert with --quantization float16 or float32)",
                self.path.display()
            ),
        };
        let data = model_hub::floats::to_f32(dtype, &variable.bytes)?;
        HostTensor::new(variable.shape.clone(), data)
            .with_context(|| format!("{}: variable {name}", self.path.display()))
    }

    /// An integer scalar attribute, e.g. `encoder/num_heads`.
    pub fn scalar(&self, name: &str) -> Result<i64> {
        let variable = self.variable(name)?;
        ensure!(
            variable.shape.is_empty(),
            "{}: {name} should be a scalar, has shape {:?}",
            self.path.display(),
            variable.shape
        );
        let b = &variable.bytes;
        Ok(match variable.dtype {
            Ct2Dtype::I8 => b[0] as i8 as i64,
            Ct2Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            Ct2Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            other => bail!(
                "{}: scalar {name} is {other:?}, expected an integer",
                self.path.display()
            ),
        })
    }

    /// Variable names that start with `prefix`.
    pub fn names_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.variables
            .keys()
            .filter(move |name| name.starts_with(prefix))
            .map(String::as_str)
    }
}

/// A cursor whose every read says what it was reading when the file ended.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, count: usize, what: &str) -> Result<&[u8]> {
        let available = self.bytes.len() - self.position;
        if count > available {
            bail!(
                "file truncated: {what} needs {count} bytes at offset {}, only {available} left",
                self.position
            );
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let length = self.u16(what)? as usize;
        let bytes = self.take(length, what)?;
        // The stored length counts a trailing NUL.
        let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        String::from_utf8(text.to_vec()).with_context(|| format!("{what} is not UTF-8"))
    }

    fn variable(&mut self) -> Result<(String, Ct2Variable)> {
        let name = self.string("variable name")?;
        let rank = self.u8("rank")? as usize;
        let shape = (0..rank)
            .map(|_| self.u32("dimension").map(|d| d as usize))
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("variable {name}"))?;
        let dtype_id = self.u8("dtype")?;
        let dtype = Ct2Dtype::from_id(dtype_id)
            .with_context(|| format!("variable {name} has unknown dtype id {dtype_id}"))?;
        let byte_count = self.u32("byte count")? as usize;
        let elements: usize = shape.iter().product();
        ensure!(
            byte_count == elements * dtype.size(),
            "variable {name}: shape {shape:?} of {dtype:?} needs {} bytes, the file says {byte_count}",
            elements * dtype.size()
        );
        let bytes = self
            .take(byte_count, "variable data")
            .with_context(|| format!("variable {name}"))?
            .to_vec();
        Ok((
            name,
            Ct2Variable {
                shape,
                dtype,
                bytes,
            },
        ))
    }
}
