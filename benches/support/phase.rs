//! A measured phase of a benchmark: its calls, the CPU time that this
//! process and `redis-server` spent on them, and Redis's statistics of the
//! commands they sent.

use std::future::Future;
use std::time::Duration;

use super::load::LoadResult;
use super::machine::{machine_busy, process_cpu};
use super::probe::{CommandStat, Drain, Probe, format_command_stats};
use super::stats::ms;

#[derive(Debug)]
pub struct Phase {
    pub name: String,
    pub result: LoadResult,
    /// CPU time of this process, which runs the service, the clients and
    /// any baseline server together.
    pub process_cpu: Duration,
    pub redis_cpu: Duration,
    /// CPU time of every other process of the machine: builds, tests or
    /// anything else that competed with the phase for the same cores.
    pub other_cpu: Duration,
    pub commands: Vec<CommandStat>,
    /// The notifications that earlier work still owed, sent before the
    /// phase began.
    pub drained_before: Drain,
    /// The SMS sent before the phase started.
    pub sms_before: Drain,
    /// Notifications owed when the phase ended: those the dispatcher had
    /// not sent yet.
    pub owed_after: u64,
}

/// Maximum wait for the dispatcher to send what earlier work owes before a
/// phase begins.
const DRAIN_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Runs `run` as the phase `name`, once the dispatcher has sent the
/// notifications that earlier work owes, with Redis's command statistics
/// reset before it.
pub async fn measure(probe: &Probe, name: &str, run: impl Future<Output = LoadResult>) -> Phase {
    let drained_before = probe.drain_outbox(DRAIN_LIMIT).await;
    // The SMS senders run in this process, so the SMS that earlier phases
    // queued are sent first rather than during the phase.
    let sms_before = probe.drain_sms(DRAIN_LIMIT).await;
    if drained_before.left > 0 || sms_before.left > 0 {
        eprintln!(
            "warning: {name}: {} notifications and {} SMS were still owed after {DRAIN_LIMIT:?}",
            drained_before.left, sms_before.left
        );
    }
    probe.reset_stats().await;
    let redis_before = probe.cpu_seconds().await;
    let process_before = process_cpu();
    let machine_before = machine_busy();

    let result = run.await;

    let machine_cpu = machine_busy().saturating_sub(machine_before);
    let process_cpu = process_cpu().saturating_sub(process_before);
    let redis_cpu = Duration::from_secs_f64((probe.cpu_seconds().await - redis_before).max(0.0));
    let other_cpu = machine_cpu
        .saturating_sub(process_cpu)
        .saturating_sub(redis_cpu);
    let commands = probe.command_stats().await;
    let owed_after = probe.outbox_len().await;
    result.warn(name);
    Phase {
        name: name.to_owned(),
        result,
        process_cpu,
        redis_cpu,
        other_cpu,
        commands,
        drained_before,
        sms_before,
        owed_after,
    }
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        self.result.summary.per_second()
    }

    fn micros_per_call(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.result.summary.calls.max(1) as f64
    }

    /// Returns the cores that other processes kept busy on average.
    pub fn other_cores(&self) -> f64 {
        self.other_cpu.as_secs_f64() / self.result.summary.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Prints the phases as a Markdown table, with their CPU time per call.
pub fn print_phases(phases: &[&Phase]) {
    println!(
        "| phase | calls | calls/s | p50 ms | p99 ms | max ms | CPU µs/call, this process | CPU µs/call, redis-server | other processes, cores | notifications owed at end |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase in phases {
        let s = &phase.result.summary;
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} |",
            phase.name,
            s.calls,
            s.per_second(),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            phase.micros_per_call(phase.process_cpu),
            phase.micros_per_call(phase.redis_cpu),
            phase.other_cores(),
            phase.owed_after,
        );
    }
    println!();
    for phase in phases {
        let (drained, sms) = (&phase.drained_before, &phase.sms_before);
        if drained.owed > 0 || sms.owed > 0 {
            println!(
                "- before {}, the dispatcher sent {} owed notifications and the senders {} SMS \
                 in {:.1} s",
                phase.name,
                drained.owed,
                sms.owed,
                (drained.elapsed + sms.elapsed).as_secs_f64()
            );
        }
    }
    for phase in phases {
        println!(
            "- Redis commands of {}: {}",
            phase.name,
            format_command_stats(&phase.commands, 10)
        );
    }
    println!();
}

/// Prints a Markdown table of `measured` against `baseline`: the rate of
/// calls, named `rate` (such as `claims/s`), with its `target`, and the
/// latencies.
pub fn print_comparison(measured: &Phase, baseline: &Phase, rate: &str, target: &str) {
    println!(
        "| figure | {} | baseline: {} | measured / baseline | target |",
        measured.name, baseline.name
    );
    println!("|---|---:|---:|---:|---|");
    println!(
        "| {rate} | {:.0} | {:.0} | {:.0}% | {target} |",
        measured.per_second(),
        baseline.per_second(),
        100.0 * measured.per_second() / baseline.per_second().max(f64::MIN_POSITIVE)
    );
    let (m, b) = (&measured.result.summary, &baseline.result.summary);
    for (name, m, b) in [("p50 ms", m.p50, b.p50), ("p99 ms", m.p99, b.p99)] {
        println!(
            "| {name} | {} | {} | {:.1}× | |",
            ms(m),
            ms(b),
            m.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE)
        );
    }
    println!();
}
