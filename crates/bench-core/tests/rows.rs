//! Rows are written whole: a full disk, a file size limit or a second
//! writer never leaves half a row or a second header in a results file.

use std::path::{Path, PathBuf};
use std::process::Command;

use bench_core::env::Environment;
use bench_core::record::{read_rows, RowWriter};
use bench_core::row::Row;
use bench_core::{Cell, Status};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rows-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A failed row of about 1.5 kB (a long reason, as a runner's output tail).
fn row(index: usize) -> Row {
    // A quick CPU float32 PyTorch cell with one thread and seed 0.
    let cell = Cell::for_checks();
    let env = Environment {
        git_commit: "abc".into(),
        ..Environment::default()
    };
    let start = Row::start("run", "rows", &cell, "1", &env);
    start.ended(Status::Failed, &format!("{index}: {}", "x".repeat(1500)))
}

const LIMIT_ENV: &str = "ROWS_TEST_LIMITED_FILE";

/// Run by `a_row_cut_short_by_a_full_disk_is_undone` in a child process
/// with a file size limit: appends rows until the limit stops it.
#[test]
#[ignore = "a child process of another test"]
fn child_appends_until_the_file_size_limit() {
    let Some(path) = std::env::var_os(LIMIT_ENV) else {
        return;
    };
    // The 5th row crosses the limit: its write is cut short, the next fails.
    let limit = libc::rlimit {
        rlim_cur: 6000,
        rlim_max: 6000,
    };
    // SAFETY: plain system calls on this process; past the limit a write
    // fails with EFBIG instead of the default SIGXFSZ killing us.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let mut writer = RowWriter::open(Path::new(&path)).unwrap();
    for index in 0..100 {
        if let Err(error) = writer.append(&row(index)) {
            println!("append failed: {error:#}");
            return;
        }
    }
    panic!("the file size limit never stopped the writer");
}

#[test]
fn a_row_cut_short_by_a_full_disk_is_undone() {
    let dir = temp_dir("limit");
    let path = dir.join("run.jsonl");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appends_until_the_file_size_limit",
            "--ignored",
            "--nocapture",
        ])
        .env(LIMIT_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "append failed: writing a row to {}",
            path.display()
        )),
        "{stdout}"
    );
    // Every row in the file is whole: the header and the rows before the cut.
    let rows = read_rows(&path).unwrap();
    assert!(!rows.is_empty() && rows.len() < 4, "{} rows", rows.len());
    for (index, written) in rows.iter().enumerate() {
        assert_eq!(
            written,
            &Row {
                timestamp: written.timestamp.clone(),
                ..row(index)
            }
        );
    }
    assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_device_is_an_error_naming_it() {
    let error = RowWriter::open(Path::new("/dev/full"))
        .and_then(|mut writer| writer.append(&row(0)))
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("/dev/full"), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
}

#[test]
fn an_output_under_a_file_is_an_error_naming_it() {
    let dir = temp_dir("notdir");
    std::fs::write(dir.join("file"), b"").unwrap();
    let path = dir.join("file/run.jsonl");
    let error = RowWriter::open(&path).err().expect("cannot create");
    assert!(
        format!("{error:#}").contains(&dir.join("file").display().to_string()),
        "{error:#}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_writers_write_one_header_and_whole_rows() {
    let dir = temp_dir("concurrent");
    let path = dir.join("run.jsonl");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut writer = RowWriter::open(&path).unwrap();
                for index in 0..25 {
                    writer.append(&row(index)).unwrap();
                }
            });
        }
    });
    assert_eq!(read_rows(&path).unwrap().len(), 100);
    // The CSV export beside it: one header and the same 100 rows.
    let csv = std::fs::read_to_string(path.with_extension("csv")).unwrap();
    assert_eq!(csv.lines().count(), 101);
    assert_eq!(csv.matches("run_id,").count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
