//! The HTML report in a real browser: headless Chromium (Debian's
//! `chromium`, which `cargo xtask setup` installs for the tests) loads the
//! page from disk and dumps the DOM it built; its network log says what the
//! page asked for. Outside CI a machine without Chromium skips these tests
//! with a note; in CI (`CI=true`) they fail, naming the package.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::tests::{swept_run, titles};
use super::{html_page, RunReport};
use crate::results::tests::temp_dir;

/// The Debian package that provides the browser.
const PACKAGE: &str = "chromium";

/// Its command, and those of the same browser elsewhere (Ubuntu, Google's).
const COMMANDS: &[&str] = &[
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Far more than a page of tables needs (about a second here).
const TIME_LIMIT: Duration = Duration::from_secs(90);

/// The browser on PATH; None outside CI when there is none (the test is
/// skipped, with a note); in CI, a panic naming the package.
fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = COMMANDS.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let message = format!(
            "no headless browser for the HTML report's test: install Debian's `{PACKAGE}` package (`apt-get install {PACKAGE}`, which `cargo xtask setup` does for the tests as root), or put one of {COMMANDS:?} on PATH"
        );
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    found
}

/// What the browser made of a page.
struct Rendered {
    /// The DOM after loading, serialised.
    dom: String,
    /// Every URL the page asked for other than its own file and `data:`.
    external: Vec<String>,
}

/// Loads `page` in headless `browser` with its own profile in `dir`, every
/// host name resolving to nothing (so no request leaves the machine), and
/// its network log in `dir`.
fn render(browser: &Path, page: &Path, dir: &Path) -> Rendered {
    let net_log = dir.join("net-log.json");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            // As root (CI containers), Chromium runs only without its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", browser.display()));
    let started = Instant::now();
    while child.try_wait().expect("waiting for the browser").is_none() {
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            panic!("{} did not finish within {TIME_LIMIT:?}", browser.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the browser's output");
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        browser.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let log = std::fs::read_to_string(&net_log).expect("the browser's network log");
    Rendered {
        dom: String::from_utf8(output.stdout).expect("the DOM is UTF-8"),
        external: page_requests(&log),
    }
}

/// The URLs that the page itself asked for (the network log's requests
/// keyed to a `file://` page; the browser's own background requests are
/// keyed otherwise), less its own file and `data:` URLs.
fn page_requests(log: &str) -> Vec<String> {
    // A log cut short lacks its closing brackets.
    let parsed: Value = serde_json::from_str(log)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", log.trim_end().trim_end_matches(','))))
        .expect("the network log is JSON");
    let mut urls: Vec<String> = parsed["events"]
        .as_array()
        .expect("the network log has events")
        .iter()
        .filter_map(|event| {
            let params = &event["params"];
            let url = params["url"].as_str()?;
            let key = params["network_isolation_key"].as_str()?;
            let own = url.starts_with("file:") || url.starts_with("data:");
            (key.contains("file://") && !own).then(|| url.to_owned())
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[test]
fn the_html_report_renders_its_tables_and_charts_and_requests_nothing() {
    let Some(browser) = browser() else { return };
    let dir = temp_dir("share-browser");
    let page = dir.join("report.html");
    let report = RunReport::of(&swept_run(), &titles()).unwrap();
    std::fs::write(&page, html_page(&report)).unwrap();

    let rendered = render(&browser, &page, &dir);
    let dom = &rendered.dom;
    for table in ["machines", "speedups", "rows"] {
        assert!(
            dom.contains(&format!("<table id=\"{table}\">")),
            "table {table} not rendered:\n{dom}"
        );
    }
    let speedup = report.speedups[3].text.clone();
    assert!(
        dom.contains(&format!("<td class=\"number\">{speedup}</td>")),
        "{speedup} not rendered"
    );
    // Both charts, drawn: the benchmark's and the scaling chart against n.
    assert_eq!(dom.matches("<svg").count(), 2, "{dom}");
    assert!(dom.contains("<circle"), "no chart marker rendered");
    assert!(dom.contains("CPU/GPU switch against n"), "{dom}");
    assert!(rendered.external.is_empty(), "{:?}", rendered.external);
    // Nothing in the page that could fetch later either.
    for needle in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(",
    ] {
        assert!(!dom.contains(needle), "{needle} in the page");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The request check itself: an external image is seen.
#[test]
fn an_external_image_shows_in_the_page_requests() {
    let Some(browser) = browser() else { return };
    let dir = temp_dir("share-browser-control");
    let page = dir.join("external.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><img src=\"http://example.invalid/a.png\"></body></html>",
    )
    .unwrap();
    let rendered = render(&browser, &page, &dir);
    assert_eq!(rendered.external, ["http://example.invalid/a.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
