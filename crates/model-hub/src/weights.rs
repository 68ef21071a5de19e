//! A checkpoint's tensors as a tree of names, in the manner of candle's
//! `VarBuilder`, but framework-free: a model's weights are read once on
//! the host, as float32, and both twins build their modules from them.
//!
//! Each block asks for its tensors where it builds its fields:
//! `tree.pp("encoder").pp("layer").pp(0).get(&[out, inp], "weight")`, so a
//! checkpoint name is written once, beside the shape the config implies.
//! A missing or mis-shaped tensor does not stop loading: it is recorded and
//! a zero tensor of the expected shape stands in, so that
//! [`WeightTree::finish`] names every problem of a checkpoint at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;
use safetensors::tensor::TensorInfo;

/// How a generated source (seeded random weights) fills a tensor; stored
/// checkpoints ignore it, as candle's `Init` hints are ignored by files.
/// The parameterised hints carry a model's own initialiser (MLX's
/// `nn.Linear`, `nn.Embedding`), for sources that train from scratch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Normal values, with the spread the source chooses.
    Normal,
    /// Normal values of mean 0 and standard deviation `std`.
    NormalStd { std: f32 },
    /// Uniform values in [-bound, bound).
    Uniform { bound: f32 },
    /// All ones (normalisation scales).
    Ones,
    /// All zeros (normalisation shifts, biases).
    Zeros,
}

/// Where a tree's tensors come from: checkpoint files, tensors in memory,
/// or a generator.
pub trait TensorSource {
    /// Names the source in errors and result rows: a file, "hub:<repo>".
    fn origin(&self) -> String;
    /// Every stored tensor's name and shape; empty for a generator, which
    /// stores nothing and so leaves nothing unused.
    fn stored(&self) -> Vec<(String, Vec<usize>)>;
    /// The shape of `name` (a generator gives `expected`); None: absent.
    fn shape(&self, name: &str, expected: &[usize]) -> Option<Vec<usize>>;
    /// `name` as float32, once its shape is known to be `shape`.
    fn read(&self, name: &str, shape: &[usize], init: Init) -> Result<HostTensor>;
}

impl<S: TensorSource + ?Sized> TensorSource for &S {
    fn origin(&self) -> String {
        (**self).origin()
    }

    fn stored(&self) -> Vec<(String, Vec<usize>)> {
        (**self).stored()
    }

    fn shape(&self, name: &str, expected: &[usize]) -> Option<Vec<usize>> {
        (**self).shape(name, expected)
    }

    fn read(&self, name: &str, shape: &[usize], init: Init) -> Result<HostTensor> {
        (**self).read(name, shape, init)
    }
}

/// One tensor a model asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The model's name for it (after any renaming of stored names).
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// What loading has seen so far.
#[derive(Default)]
struct Record {
    requested: Vec<Request>,
    /// Stored names that some `get` has taken.
    used: HashSet<String>,
    /// One line per missing, mis-shaped or unreadable tensor.
    problems: Vec<String>,
}

/// Problems shown before "and N more".
const PROBLEMS_SHOWN: usize = 5;

/// A source's tensors by name, with a record of what the model took.
pub struct WeightTree<'s> {
    source: Box<dyn TensorSource + 's>,
    /// The stored name of each model name, when stored names are mapped
    /// (aliases such as BERT's `bert.` prefix); None: names as stored.
    stored_names: Option<HashMap<String, String>>,
    record: RefCell<Record>,
}

impl<'s> WeightTree<'s> {
    pub fn new(source: impl TensorSource + 's) -> Self {
        Self {
            source: Box::new(source),
            stored_names: None,
            record: RefCell::default(),
        }
    }

    /// The tensors of one safetensors file, named by its path in errors.
    pub fn from_safetensors(path: &Path) -> Result<Self> {
        let files = SafetensorsFiles::open(&[path.to_owned()], &path.display().to_string())?;
        Ok(Self::new(files))
    }

    /// Tensors already in memory (tests, initialised weights).
    pub fn from_tensors(tensors: BTreeMap<String, HostTensor>, origin: &str) -> Self {
        Self::new(HostTensors {
            tensors,
            origin: origin.to_owned(),
        })
    }

    /// Maps each stored name to the model's name for it (a checkpoint's
    /// quirks, written once, as mlx-lm's `sanitize`); two stored names
    /// that map to one are an error naming both.
    pub fn with_names(mut self, model_name: impl Fn(&str) -> String) -> Result<Self> {
        let mut stored_names: HashMap<String, String> = HashMap::new();
        for (stored, _) in self.source.stored() {
            let name = model_name(&stored);
            if let Some(other) = stored_names.insert(name.clone(), stored.clone()) {
                bail!(
                    "{}: tensors {other} and {stored} both name {name}",
                    self.source.origin()
                );
            }
        }
        self.stored_names = Some(stored_names);
        Ok(self)
    }

    /// The path of the tree's top.
    pub fn root(&self) -> WeightPath<'_> {
        WeightPath {
            tree: self,
            prefix: String::new(),
        }
    }

    /// The path `prefix` (dotted) below the top.
    pub fn pp(&self, prefix: impl std::fmt::Display) -> WeightPath<'_> {
        self.root().pp(prefix)
    }

    pub fn origin(&self) -> String {
        self.source.origin()
    }

    /// Every tensor asked for so far, in order: the model's tensor list,
    /// derived from the loading code itself.
    pub fn requested(&self) -> Vec<Request> {
        self.record.borrow().requested.clone()
    }

    /// Ends loading: an error naming every missing, mis-shaped or
    /// unreadable tensor, else the stored tensors nothing asked for (names
    /// and shapes), for a caller that tolerates them.
    pub fn finish(self) -> Result<Vec<(String, Vec<usize>)>> {
        let unused = self.unused();
        self.fail_on(self.record.borrow().problems.clone())?;
        Ok(unused.into_iter().map(|(_, stored)| stored).collect())
    }

    /// Ends loading strictly: as [`finish`](Self::finish), and every unused
    /// stored tensor is an error too, except those `may_be_unused` (given
    /// the model's name) accepts, such as heads the model does not have.
    pub fn finish_strict(self, may_be_unused: impl Fn(&str) -> bool) -> Result<()> {
        let mut problems = self.record.borrow().problems.clone();
        problems.extend(
            self.unused()
                .into_iter()
                .filter(|(name, _)| !may_be_unused(name))
                .map(|(_, (stored, shape))| {
                    format!("tensor {stored} {shape:?} is not used by the model")
                }),
        );
        self.fail_on(problems)
    }

    /// Stored tensors no `get` took: (model name, (stored name, shape)).
    fn unused(&self) -> Vec<(String, (String, Vec<usize>))> {
        let record = self.record.borrow();
        let model_names: HashMap<&String, &String> = self
            .stored_names
            .iter()
            .flatten()
            .map(|(name, stored)| (stored, name))
            .collect();
        let mut unused: Vec<_> = self
            .source
            .stored()
            .into_iter()
            .filter(|(stored, _)| !record.used.contains(stored))
            .map(|(stored, shape)| {
                let name = model_names.get(&stored).map_or(&stored, |n| *n).clone();
                (name, (stored, shape))
            })
            .collect();
        unused.sort();
        unused
    }

    /// One error listing the first few problems, the origin, and counts.
    fn fail_on(&self, problems: Vec<String>) -> Result<()> {
        if problems.is_empty() {
            return Ok(());
        }
        let shown = problems[..problems.len().min(PROBLEMS_SHOWN)].join("; ");
        let more = match problems.len() {
            n if n > PROBLEMS_SHOWN => format!("; and {} more", n - PROBLEMS_SHOWN),
            _ => String::new(),
        };
        bail!(
            "{}: {shown}{more} (of {} tensors the model asks for; the source holds {})",
            self.source.origin(),
            self.record.borrow().requested.len(),
            self.source.stored().len()
        )
    }

    /// The tensor `name` of `shape`, or a zero stand-in and a recorded
    /// problem.
    fn take(&self, name: String, shape: &[usize], init: Init) -> HostTensor {
        let found = self.lookup(&name, shape, init);
        let mut record = self.record.borrow_mut();
        record.requested.push(Request {
            name,
            shape: shape.to_vec(),
            init,
        });
        match found {
            Ok((stored, tensor)) => {
                record.used.insert(stored);
                tensor
            }
            Err((stored, problem)) => {
                record.used.extend(stored);
                record.problems.push(problem);
                HostTensor {
                    shape: shape.to_vec(),
                    data: vec![0.0; shape.iter().product()],
                }
            }
        }
    }

    /// (stored name, tensor), or (the stored name if any, the problem).
    #[allow(clippy::type_complexity)]
    fn lookup(
        &self,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> std::result::Result<(String, HostTensor), (Option<String>, String)> {
        let missing = || format!("tensor {name} is missing (expected shape {shape:?})");
        let stored = match &self.stored_names {
            Some(names) => names.get(name).cloned().ok_or((None, missing()))?,
            None => name.to_owned(),
        };
        let Some(actual) = self.source.shape(&stored, shape) else {
            return Err((None, missing()));
        };
        if actual != shape {
            let problem = format!("tensor {stored} has shape {actual:?}, expected {shape:?}");
            return Err((Some(stored), problem));
        }
        match self.source.read(&stored, shape, init) {
            Ok(tensor) => Ok((stored, tensor)),
            Err(error) => {
                let problem = format!("tensor {stored}: {error:#}");
                Err((Some(stored), problem))
            }
        }
    }
}

/// A borrowed view of a tree below a dotted prefix.
#[derive(Clone)]
pub struct WeightPath<'t> {
    tree: &'t WeightTree<'t>,
    prefix: String,
}

impl<'t> WeightPath<'t> {
    /// The path `name` (dotted, or a layer index) below this one.
    pub fn pp(&self, name: impl std::fmt::Display) -> WeightPath<'t> {
        WeightPath {
            tree: self.tree,
            prefix: self.full_name(&name.to_string()),
        }
    }

    /// The tensor `name` of `shape` here (a generator draws it normal).
    pub fn get(&self, shape: &[usize], name: &str) -> HostTensor {
        self.get_init(shape, name, Init::Normal)
    }

    /// The tensor `name` of `shape` here, `init` telling a generator how
    /// to fill it. A missing or mis-shaped tensor is recorded for
    /// [`WeightTree::finish`], and zeros of `shape` stand in.
    pub fn get_init(&self, shape: &[usize], name: &str, init: Init) -> HostTensor {
        self.tree.take(self.full_name(name), shape, init)
    }

    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }
}

/// Tensors held in memory, by name.
struct HostTensors {
    tensors: BTreeMap<String, HostTensor>,
    origin: String,
}

impl TensorSource for HostTensors {
    fn origin(&self) -> String {
        self.origin.clone()
    }

    fn stored(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|(name, tensor)| (name.clone(), tensor.shape.clone()))
            .collect()
    }

    fn shape(&self, name: &str, _: &[usize]) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|tensor| tensor.shape.clone())
    }

    fn read(&self, name: &str, _: &[usize], _: Init) -> Result<HostTensor> {
        self.tensors
            .get(name)
            .cloned()
            .with_context(|| format!("no tensor {name}"))
    }
}

/// Hugging Face safetensors files: one `model.safetensors`, or the shards
/// a `model.safetensors.index.json` lists. Only the headers are read up
/// front; each tensor is read from disk when asked for, so that a large
/// model never sits in host memory whole.
#[derive(Debug)]
pub struct SafetensorsFiles {
    tensors: HashMap<String, StoredTensor>,
    origin: String,
}

#[derive(Debug)]
struct StoredTensor {
    file: PathBuf,
    /// Where the tensor's bytes start in the file.
    data_start: u64,
    info: TensorInfo,
}

impl SafetensorsFiles {
    /// Reads the headers of `files`; `origin` names the source in errors.
    pub fn open(files: &[PathBuf], origin: &str) -> Result<Self> {
        let mut tensors = HashMap::new();
        for file in files {
            let (data_start, infos) = read_header(file)?;
            for (name, info) in infos {
                let stored = StoredTensor {
                    file: file.clone(),
                    data_start,
                    info,
                };
                tensors.insert(name, stored);
            }
        }
        Ok(Self {
            tensors,
            origin: origin.to_owned(),
        })
    }

    /// The shard files named by a `model.safetensors.index.json`.
    pub fn shards_of_index(index: &Path) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let text = std::fs::read_to_string(index)
            .with_context(|| format!("reading {}", index.display()))?;
        let parsed: Index = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a safetensors index", index.display()))?;
        let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        Ok(shards)
    }
}

impl TensorSource for SafetensorsFiles {
    fn origin(&self) -> String {
        self.origin.clone()
    }

    fn stored(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|(name, stored)| (name.clone(), stored.info.shape.clone()))
            .collect()
    }

    fn shape(&self, name: &str, _: &[usize]) -> Option<Vec<usize>> {
        self.tensors
            .get(name)
            .map(|stored| stored.info.shape.clone())
    }

    fn read(&self, name: &str, shape: &[usize], _: Init) -> Result<HostTensor> {
        let stored = self
            .tensors
            .get(name)
            .with_context(|| format!("no tensor {name}"))?;
        let (start, end) = stored.info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        let path = stored.file.display();
        let mut file = File::open(&stored.file).with_context(|| format!("opening {path}"))?;
        file.seek(SeekFrom::Start(stored.data_start + start as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .with_context(|| format!("reading its bytes from {path}"))?;
        let data = crate::floats::to_f32(stored.info.dtype, &bytes)
            .with_context(|| format!("in {path}"))?;
        HostTensor::new(shape.to_vec(), data).with_context(|| format!("in {path}"))
    }
}

/// The tensor table of a safetensors file and where its data begins.
fn read_header(path: &Path) -> Result<(u64, Vec<(String, TensorInfo)>)> {
    let not_safetensors = || format!("{}: not a safetensors file", path.display());
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).with_context(not_safetensors)?;
    let length = u64::from_le_bytes(length);
    let file_length = file.metadata()?.len();
    ensure!(
        length < 100_000_000 && 8 + length <= file_length,
        "{} (its header length {length} does not fit a {file_length}-byte file)",
        not_safetensors()
    );
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).with_context(not_safetensors)?;
    let entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).with_context(not_safetensors)?;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value)
            .with_context(|| format!("{}: entry {name} is not a tensor", path.display()))?;
        tensors.push((name, info));
    }
    Ok((8 + length, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], first: f32) -> HostTensor {
        let len: usize = shape.iter().product();
        let data = (0..len).map(|i| first + i as f32).collect();
        HostTensor::new(shape.to_vec(), data).unwrap()
    }

    fn tree_of(tensors: &[(&str, HostTensor)]) -> WeightTree<'static> {
        let map = tensors
            .iter()
            .map(|(name, t)| (name.to_string(), t.clone()))
            .collect();
        WeightTree::from_tensors(map, "test.safetensors")
    }

    #[test]
    fn nested_paths_join_prefixes_with_dots() {
        let weight = tensor(&[2, 3], 1.0);
        let tree = tree_of(&[("encoder.layer.0.attention.query.weight", weight.clone())]);
        let attention = tree.pp("encoder").pp("layer.0").pp("attention");
        assert_eq!(attention.pp("query").get(&[2, 3], "weight"), weight);
        let layer = tree.pp("encoder.layer").pp(0);
        assert_eq!(layer.pp("attention.query").get(&[2, 3], "weight"), weight);
        assert_eq!(tree.finish().unwrap(), []);
    }

    #[test]
    fn a_wrong_shape_is_named_with_both_shapes_and_zeros_stand_in() {
        let tree = tree_of(&[("dense.weight", tensor(&[3, 2], 0.0))]);
        let stand_in = tree.pp("dense").get(&[2, 3], "weight");
        assert_eq!(stand_in.shape, [2, 3]);
        assert!(stand_in.data.iter().all(|&v| v == 0.0));
        let error = tree.finish().unwrap_err().to_string();
        assert!(
            error.contains(
                "test.safetensors: tensor dense.weight has shape [3, 2], expected [2, 3]"
            ),
            "{error}"
        );
    }

    #[test]
    fn every_missing_tensor_is_counted_and_the_first_ones_named() {
        let tree = tree_of(&[]);
        for layer in 0..7 {
            tree.pp("layers").pp(layer).get(&[4], "bias");
        }
        assert_eq!(tree.requested().len(), 7);
        let error = tree.finish().unwrap_err().to_string();
        assert!(
            error.contains("tensor layers.0.bias is missing (expected shape [4])"),
            "{error}"
        );
        assert!(error.contains("layers.4.bias"), "{error}");
        assert!(!error.contains("layers.5.bias"), "{error}");
        assert!(error.contains("and 2 more"), "{error}");
        assert!(error.contains("of 7 tensors"), "{error}");
    }

    #[test]
    fn unused_tensors_are_reported_and_strictness_is_the_callers_choice() {
        let tensors = [
            ("dense.weight", tensor(&[2], 0.0)),
            ("cls.bias", tensor(&[5], 0.0)),
            ("position_ids", tensor(&[1, 3], 0.0)),
        ];
        let tree = tree_of(&tensors);
        tree.pp("dense").get(&[2], "weight");
        assert_eq!(
            tree.finish().unwrap(),
            [
                ("cls.bias".to_owned(), vec![5]),
                ("position_ids".to_owned(), vec![1, 3])
            ]
        );
        let strict = tree_of(&tensors);
        strict.pp("dense").get(&[2], "weight");
        let error = strict
            .finish_strict(|name| name == "position_ids")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tensor cls.bias [5] is not used by the model"),
            "{error}"
        );
        assert!(!error.contains("position_ids"), "{error}");
        let tolerant = tree_of(&tensors);
        tolerant.pp("dense").get(&[2], "weight");
        tolerant
            .finish_strict(|name| name == "position_ids" || name.starts_with("cls."))
            .unwrap();
    }

    #[test]
    fn renamed_stored_names_are_found_and_reported_as_stored() {
        let tree = tree_of(&[
            ("bert.norm.gamma", tensor(&[2], 1.0)),
            ("bert.dense.weight", tensor(&[3], 0.0)),
        ])
        .with_names(|stored| {
            let name = stored.strip_prefix("bert.").unwrap_or(stored);
            name.replace(".gamma", ".weight")
        })
        .unwrap();
        assert_eq!(tree.pp("norm").get(&[2], "weight"), tensor(&[2], 1.0));
        tree.pp("dense").get(&[2], "weight");
        let error = tree.finish().unwrap_err().to_string();
        assert!(
            error.contains("tensor bert.dense.weight has shape [3], expected [2]"),
            "{error}"
        );
        let clash = tree_of(&[("a", tensor(&[1], 0.0)), ("bert.a", tensor(&[1], 0.0))])
            .with_names(|stored| stored.trim_start_matches("bert.").to_owned());
        assert!(clash.is_err());
    }

    #[test]
    fn a_safetensors_file_is_read_per_tensor_and_garbage_is_named() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("model-hub-{}-tree.safetensors", std::process::id()));
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &bytes).unwrap();
        safetensors::serialize_to_file([("w", view)], None, &path).unwrap();
        let tree = WeightTree::from_safetensors(&path).unwrap();
        assert_eq!(tree.root().get(&[2], "w").data, [1.5, -2.0]);
        tree.finish().unwrap();
        std::fs::write(&path, b"not a checkpoint").unwrap();
        let error = format!("{:#}", WeightTree::from_safetensors(&path).err().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.contains("tree.safetensors: not a safetensors file"),
            "{error}"
        );
    }
}
