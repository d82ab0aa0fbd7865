//! The machine a benchmark ran on, and the CPU time this process used.

use std::time::Duration;

use chrono::Utc;

use super::probe::Probe;

/// Prints the title, date, machine, Redis version and git commit that a
/// record of the results needs.
pub async fn print_header(title: &str, probe: &Probe) {
    println!("# {title}");
    println!();
    println!("- date: {}", Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!(
        "- cpus: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("- cpu model: {}", cpu_model());
    println!("- memory: {}", total_memory());
    println!("- os: {}", os_name());
    println!("- redis-server: {}", probe.version().await);
    println!("- commit: {}", git_commit());
    println!("- load average at start (1, 5, 15 min): {}", load_average());
    println!();
}

/// Returns the CPU time, user and system, of this whole process so far, or
/// zero where `/proc/self/stat` is missing.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The command name in brackets may contain spaces, so the fields are
    // counted after its closing bracket: utime and stime are fields 14 and
    // 15 of the line, the 12th and 13th after the bracket.
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // `/proc` counts in USER_HZ ticks, which are 1/100 s on x86 and Arm
    // Linux.
    Duration::from_millis(ticks * 10)
}

/// Returns the CPU time that every process of the machine spent so far,
/// from the first line of `/proc/stat`, or zero where it is missing. Idle
/// and I/O wait are not counted.
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return Duration::ZERO;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user, nice, system, idle, iowait, irq, softirq, steal; guest time is
    // already part of user.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    Duration::from_millis(busy * 10)
}

fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    if fields.len() == 3 {
        fields.join(", ")
    } else {
        "unknown".to_owned()
    }
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(
            || "unknown".to_owned(),
            |(_, model)| model.trim().to_owned(),
        )
}

fn total_memory() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: Option<u64> = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok());
    kib.map_or_else(
        || "unknown".to_owned(),
        |kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0),
    )
}

fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let name = release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map_or("unknown", |name| name.trim_matches('"'));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{name}, Linux {}", kernel.trim())
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        )
}
