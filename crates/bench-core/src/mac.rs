//! Which Mac measured a row: the chip, its cores and memory, the macOS
//! version, and the conditions that move timings on a Mac (power source,
//! Low Power Mode, thermal limits).
//!
//! Everything here is read from the text of macOS's own tools, so that the
//! parsers can be tested anywhere on captured output
//! (`tests/fixtures/mac/`); only [`capture`], which runs the tools, is
//! compiled for macOS alone.
//!
//! | field | source |
//! |---|---|
//! | chip | `sysctl machdep.cpu.brand_string` ("Apple M4 Max") |
//! | performance, efficiency cores | `sysctl hw.perflevel0.physicalcpu`, `hw.perflevel1.physicalcpu` |
//! | GPU cores | `system_profiler SPDisplaysDataType`: "Total Number of Cores: 40" |
//! | memory | `sysctl hw.memsize` (bytes) |
//! | macOS | `sw_vers -productVersion` |
//! | power source | `pmset -g batt`: "Now drawing from 'AC Power'" |
//! | Low Power Mode | `pmset -g`: "lowpowermode 1", or "powermode 1" (2: High Power Mode) |
//! | thermal state | `pmset -g therm`, see [`Thermal`] |

use serde::{Deserialize, Serialize};

/// The Mac a process ran on, and its power and thermal state at the start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MacIdentity {
    /// "Apple M4 Max".
    pub chip: String,
    /// Performance cores (`hw.perflevel0.physicalcpu`).
    #[serde(default)]
    pub performance_cores: Option<u32>,
    /// Efficiency cores (`hw.perflevel1.physicalcpu`).
    #[serde(default)]
    pub efficiency_cores: Option<u32>,
    /// GPU cores (`system_profiler SPDisplaysDataType`).
    #[serde(default)]
    pub gpu_cores: Option<u32>,
    /// Unified memory in bytes (`hw.memsize`).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// "14.4.1" (`sw_vers -productVersion`).
    #[serde(default)]
    pub macos_version: String,
    /// "AC Power", "Battery Power" or "UPS Power" (`pmset -g batt`).
    #[serde(default)]
    pub power_source: Option<String>,
    /// Whether Low Power Mode was on (`pmset -g`).
    #[serde(default)]
    pub low_power_mode: Option<bool>,
    /// Whether High Power Mode was on (`pmset -g`: "powermode 2"; only the
    /// Macs that offer it print the setting).
    #[serde(default)]
    pub high_power_mode: Option<bool>,
    /// `pmset -g therm`, where it could be read.
    #[serde(default)]
    pub thermal: Option<Thermal>,
}

/// What `pmset -g therm` says. It prints the CPU limits only after macOS
/// recorded a CPU power notification (the three `CPU_*` keys, percentages
/// and a count); otherwise "Note: No CPU power status has been recorded".
/// Other lines that name a warning level, unless they say none has been
/// recorded, are kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thermal {
    /// `CPU_Speed_Limit`: 100 is no limit.
    #[serde(default)]
    pub cpu_speed_limit: Option<u32>,
    /// `CPU_Scheduler_Limit`: 100 is no limit.
    #[serde(default)]
    pub cpu_scheduler_limit: Option<u32>,
    /// `CPU_Available_CPUs`.
    #[serde(default)]
    pub cpu_available_cpus: Option<u32>,
    /// Recorded thermal or performance warnings, verbatim.
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Thermal {
    /// Whether macOS said it limited the CPU or recorded a warning.
    pub fn limited(&self) -> bool {
        self.cpu_speed_limit.is_some_and(|limit| limit < 100)
            || self.cpu_scheduler_limit.is_some_and(|limit| limit < 100)
            || !self.warnings.is_empty()
    }
}

impl MacIdentity {
    /// The chip with its GPU cores: "Apple M4 Max (40-core GPU)". Macs
    /// with different GPUs never share this name, so their rows are never
    /// pooled.
    pub fn gpu_name(&self) -> String {
        match self.gpu_cores {
            Some(cores) => format!("{} ({cores}-core GPU)", self.chip),
            None => self.chip.clone(),
        }
    }

    /// The chip with its CPU cores: "Apple M4 Max (12P+4E)".
    pub fn cpu_name(&self) -> String {
        match (self.performance_cores, self.efficiency_cores) {
            (Some(p), Some(e)) => format!("{} ({p}P+{e}E)", self.chip),
            (Some(p), None) => format!("{} ({p}P)", self.chip),
            _ => self.chip.clone(),
        }
    }

    /// Power and thermal conditions in a few words: "AC Power, Low Power
    /// Mode, CPU speed limit 71%".
    pub fn conditions(&self) -> String {
        let mut parts = vec![self
            .power_source
            .clone()
            .unwrap_or_else(|| "power source unknown".to_owned())];
        if self.low_power_mode == Some(true) {
            parts.push("Low Power Mode".to_owned());
        }
        if self.high_power_mode == Some(true) {
            parts.push("High Power Mode".to_owned());
        }
        if let Some(thermal) = &self.thermal {
            if let Some(limit) = thermal.cpu_speed_limit.filter(|&l| l < 100) {
                parts.push(format!("CPU speed limit {limit}%"));
            }
            if let Some(limit) = thermal.cpu_scheduler_limit.filter(|&l| l < 100) {
                parts.push(format!("CPU scheduler limit {limit}%"));
            }
            parts.extend(thermal.warnings.iter().cloned());
        }
        parts.join(", ")
    }
}

/// `system_profiler SPDisplaysDataType`: the first GPU's "Total Number of
/// Cores".
pub fn parse_gpu_cores(text: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Total Number of Cores:")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// `system_profiler SPDisplaysDataType`: the first GPU's "Chipset Model".
pub fn parse_gpu_model(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("Chipset Model:")
            .map(|model| model.trim().to_owned())
            .filter(|model| !model.is_empty())
    })
}

/// `pmset -g batt`: "Now drawing from 'AC Power'" gives "AC Power".
pub fn parse_power_source(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Now drawing from")?.trim();
        let source = rest.trim_matches(|c| c == '\'' || c == '"').trim();
        (!source.is_empty()).then(|| source.to_owned())
    })
}

/// A setting's value in `pmset -g` ("Currently in use:" lists one per
/// line, name then value).
fn pmset_setting(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == name).then_some(())?;
        words.next()?.parse().ok()
    })
}

/// `pmset -g`: Low Power Mode, from "lowpowermode 0|1", or from
/// "powermode 1" on Macs whose setting has three values (0 automatic,
/// 1 low power, 2 high power). None where neither is printed.
pub fn parse_low_power_mode(text: &str) -> Option<bool> {
    pmset_setting(text, "lowpowermode")
        .map(|value| value == 1)
        .or_else(|| pmset_setting(text, "powermode").map(|value| value == 1))
}

/// `pmset -g`: High Power Mode ("powermode 2"), where the Mac has it.
pub fn parse_high_power_mode(text: &str) -> Option<bool> {
    pmset_setting(text, "powermode").map(|value| value == 2)
}

/// `pmset -g therm`; see [`Thermal`].
pub fn parse_thermal(text: &str) -> Thermal {
    let mut thermal = Thermal::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().parse().ok();
            match key.trim() {
                "CPU_Speed_Limit" => thermal.cpu_speed_limit = value,
                "CPU_Scheduler_Limit" => thermal.cpu_scheduler_limit = value,
                "CPU_Available_CPUs" => thermal.cpu_available_cpus = value,
                _ => {}
            }
        }
        let lower = line.to_ascii_lowercase();
        if lower.contains("warning level") && !lower.contains("has been recorded") {
            thermal.warnings.push(line.to_owned());
        }
    }
    thermal
}

/// A numeric sysctl value as `sysctlbyname` returns it: 4 bytes (int) or
/// 8 bytes (`hw.memsize`), in the machine's byte order.
pub fn sysctl_number(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u32::from_ne_bytes(bytes.try_into().ok()?) as u64),
        8 => Some(u64::from_ne_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// A string sysctl value: its bytes up to the terminating NUL.
pub fn sysctl_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Reads this Mac. Each piece that cannot be read is left empty; nothing
/// here fails.
#[cfg(target_os = "macos")]
pub fn capture() -> MacIdentity {
    let run = |program: &str, args: &[&str]| -> String {
        std::process::Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    };
    let displays = run("system_profiler", &["SPDisplaysDataType"]);
    let settings = run("pmset", &["-g"]);
    let therm = run("pmset", &["-g", "therm"]);
    let chip = sysctl::read("machdep.cpu.brand_string")
        .as_deref()
        .and_then(sysctl_text)
        .or_else(|| parse_gpu_model(&displays))
        .unwrap_or_else(|| "Apple silicon".to_owned());
    let number = |name: &str| sysctl::read(name).as_deref().and_then(sysctl_number);
    MacIdentity {
        chip,
        performance_cores: number("hw.perflevel0.physicalcpu").map(|n| n as u32),
        efficiency_cores: number("hw.perflevel1.physicalcpu").map(|n| n as u32),
        gpu_cores: parse_gpu_cores(&displays),
        memory_bytes: number("hw.memsize"),
        macos_version: run("sw_vers", &["-productVersion"]).trim().to_owned(),
        power_source: parse_power_source(&run("pmset", &["-g", "batt"])),
        low_power_mode: parse_low_power_mode(&settings),
        high_power_mode: parse_high_power_mode(&settings),
        thermal: (!therm.is_empty()).then(|| parse_thermal(&therm)),
    }
}

#[cfg(target_os = "macos")]
mod sysctl {
    use std::ffi::CString;

    /// The raw value of the sysctl `name`, None where it does not exist
    /// (`hw.perflevel1` on a Mac without efficiency cores).
    pub fn read(name: &str) -> Option<Vec<u8>> {
        let name = CString::new(name).ok()?;
        let mut len: libc::size_t = 0;
        // SAFETY: a size query: no output buffer, `len` receives the size.
        let status = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                std::ptr::null_mut(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if status != 0 || len == 0 {
            return None;
        }
        let mut buffer = vec![0u8; len];
        // SAFETY: `buffer` holds `len` bytes; sysctlbyname writes at most
        // that many and sets `len` to what it wrote.
        let status = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                buffer.as_mut_ptr().cast::<libc::c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if status != 0 {
            return None;
        }
        buffer.truncate(len);
        Some(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../tests/fixtures/mac/", $name))
        };
    }

    #[test]
    fn gpu_cores_and_model_come_from_system_profiler() {
        let m4 = fixture!("system_profiler-displays-m4max.txt");
        assert_eq!(parse_gpu_cores(m4), Some(40));
        assert_eq!(parse_gpu_model(m4).as_deref(), Some("Apple M4 Max"));
        let m1 = fixture!("system_profiler-displays-m1-headless.txt");
        assert_eq!(parse_gpu_cores(m1), Some(8));
        assert_eq!(parse_gpu_model(m1).as_deref(), Some("Apple M1"));
        assert_eq!(parse_gpu_cores("Graphics/Displays:\n"), None);
    }

    #[test]
    fn power_source_is_the_quoted_name() {
        assert_eq!(
            parse_power_source(fixture!("pmset-batt-battery.txt")).as_deref(),
            Some("Battery Power")
        );
        assert_eq!(
            parse_power_source(fixture!("pmset-batt-ac.txt")).as_deref(),
            Some("AC Power")
        );
        assert_eq!(
            parse_power_source(fixture!("pmset-batt-desktop.txt")).as_deref(),
            Some("AC Power")
        );
        assert_eq!(parse_power_source(""), None);
    }

    #[test]
    fn low_and_high_power_modes_from_pmset() {
        let low = fixture!("pmset-g-lowpower.txt");
        assert_eq!(parse_low_power_mode(low), Some(true));
        assert_eq!(parse_high_power_mode(low), None);
        let high = fixture!("pmset-g-highpower.txt");
        assert_eq!(parse_low_power_mode(high), Some(false));
        assert_eq!(parse_high_power_mode(high), Some(true));
        // "lowpowermode" is not "powermode", nor "Sleep On Power Button".
        assert_eq!(parse_low_power_mode(" lowpowermode 0\n"), Some(false));
        assert_eq!(parse_high_power_mode(" lowpowermode 0\n"), None);
        assert_eq!(parse_low_power_mode(" Sleep On Power Button 1\n"), None);
    }

    #[test]
    fn thermal_limits_and_warnings_from_pmset_therm() {
        let nominal = parse_thermal(fixture!("pmset-therm-nominal.txt"));
        assert_eq!(nominal, Thermal::default());
        assert!(!nominal.limited());
        let throttled = parse_thermal(fixture!("pmset-therm-throttled.txt"));
        assert_eq!(throttled.cpu_speed_limit, Some(71));
        assert_eq!(throttled.cpu_scheduler_limit, Some(100));
        assert_eq!(throttled.cpu_available_cpus, Some(10));
        assert!(throttled.warnings.is_empty());
        assert!(throttled.limited());
        let warned = parse_thermal(fixture!("pmset-therm-warning.txt"));
        assert_eq!(
            warned.warnings,
            vec!["Thermal Warning Level = 2".to_owned()]
        );
        assert!(warned.limited());
    }

    #[test]
    fn sysctl_values_decode_by_width() {
        assert_eq!(sysctl_number(&12u32.to_ne_bytes()), Some(12));
        assert_eq!(
            sysctl_number(&(128u64 << 30).to_ne_bytes()),
            Some(137_438_953_472)
        );
        assert_eq!(sysctl_number(&[1, 2, 3]), None);
        assert_eq!(
            sysctl_text(b"Apple M4 Max\0").as_deref(),
            Some("Apple M4 Max")
        );
        assert_eq!(sysctl_text(b"\0"), None);
    }

    fn m4_max() -> MacIdentity {
        MacIdentity {
            chip: "Apple M4 Max".into(),
            performance_cores: Some(12),
            efficiency_cores: Some(4),
            gpu_cores: Some(40),
            memory_bytes: Some(128 << 30),
            macos_version: "15.3.1".into(),
            power_source: Some("Battery Power".into()),
            low_power_mode: Some(true),
            high_power_mode: None,
            thermal: Some(parse_thermal(fixture!("pmset-therm-throttled.txt"))),
        }
    }

    #[test]
    fn names_carry_the_cores() {
        let mac = m4_max();
        assert_eq!(mac.gpu_name(), "Apple M4 Max (40-core GPU)");
        assert_eq!(mac.cpu_name(), "Apple M4 Max (12P+4E)");
        assert_eq!(
            mac.conditions(),
            "Battery Power, Low Power Mode, CPU speed limit 71%"
        );
        let bare = MacIdentity {
            chip: "Apple M2".into(),
            ..MacIdentity::default()
        };
        assert_eq!(bare.gpu_name(), "Apple M2");
        assert_eq!(bare.cpu_name(), "Apple M2");
        assert_eq!(bare.conditions(), "power source unknown");
    }

    #[test]
    fn an_identity_reads_back_and_old_records_lack_it() {
        let mac = m4_max();
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(serde_json::from_str::<MacIdentity>(&json).unwrap(), mac);
        // A record of only the chip still reads.
        let chip_only: MacIdentity = serde_json::from_str(r#"{"chip":"Apple M1"}"#).unwrap();
        assert_eq!(chip_only.gpu_cores, None);
    }
}
