//! `daiban export-bonus` and `daiban close-quarter`: the quarterly jobs, as
//! gRPC clients of a running service.
//!
//! The export writes a county's bonus statement for one quarter as CSV
//! (UTF-8 with a byte order mark, so Excel reads the Chinese text) or as
//! XLSX, chosen by the output file's extension. Both exit with a code a
//! scheduler can act on; see [`ExitCode`].

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, FixedOffset, Utc};
use clap::Args;
use daiban_domain::{AgentRole, CountyCode, Quarter, format_points, format_yuan};
use daiban_points::Statement;
use daiban_points::statement_file::{self, StatementLine};
use daiban_proto::v1 as pb;
use daiban_proto::v1::points_service_client::PointsServiceClient;
use daiban_server::Scope;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::Code;

use crate::client::{ClientArgs, authorized};

/// The exit codes of the jobs, for schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 1: anything else, such as a bug; a person should look.
    Failure = 1,
    /// 2: the command line is invalid (also clap's own code).
    Usage = 2,
    /// 3: the service rejected the request: an invalid or unknown county or
    /// quarter, or a quarter that cannot be closed (not ended, or closed
    /// already). Retrying the same command fails the same way.
    Rejected = 3,
    /// 4: the credential is missing, unknown or lacks the scope.
    Credentials = 4,
    /// 5: the service is unreachable, unavailable or timed out; retry
    /// later.
    Unavailable = 5,
    /// 6: the output file could not be written.
    Output = 6,
}

/// An error that decides the process's exit code.
#[derive(Debug)]
pub struct JobError {
    pub code: ExitCode,
    message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

fn job_error(code: ExitCode, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(JobError {
        code,
        message: message.into(),
    })
}

/// Returns the exit code for `err`: the code of the first `JobError` in
/// its chain, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<JobError>())
        .map_or(ExitCode::Failure, |job| job.code) as u8
}

/// Maps a failed call to a job error that names what failed.
fn call_failed(what: &str, status: tonic::Status) -> anyhow::Error {
    let code = match status.code() {
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition | Code::OutOfRange => {
            ExitCode::Rejected
        }
        Code::Unauthenticated | Code::PermissionDenied => ExitCode::Credentials,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ExitCode::Unavailable
        }
        _ => ExitCode::Failure,
    };
    job_error(
        code,
        format!("{what} failed: {:?}: {}", status.code(), status.message()),
    )
}

async fn points_client(
    client: &ClientArgs,
) -> Result<PointsServiceClient<tonic::transport::Channel>> {
    let channel = client
        .channel()
        .await
        .map_err(|err| job_error(ExitCode::Unavailable, format!("{err:#}")))?;
    Ok(PointsServiceClient::new(channel))
}

#[derive(Args)]
pub struct ExportArgs {
    /// The quarter to export, such as 2026Q3.
    #[arg(long)]
    quarter: String,
    /// The 6-digit county code; may be left out when the service serves
    /// one county.
    #[arg(long)]
    county: Option<String>,
    /// The file to write, ending in .csv or .xlsx. Without it, CSV goes to
    /// standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
pub struct CloseArgs {
    /// The quarter to close, such as 2026Q3. It must have ended in UTC+8.
    #[arg(long)]
    quarter: String,
    /// The 6-digit county code; may be left out when the service serves
    /// one county.
    #[arg(long)]
    county: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// The file formats of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Csv,
    Xlsx,
}

fn output_format(out: Option<&Path>) -> Result<OutputFormat> {
    let Some(path) = out else {
        return Ok(OutputFormat::Csv);
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(OutputFormat::Csv),
        Some("xlsx") => Ok(OutputFormat::Xlsx),
        _ => Err(job_error(
            ExitCode::Usage,
            format!(
                "--out {}: expected a file name ending in .csv or .xlsx",
                path.display()
            ),
        )),
    }
}

/// A statement as received: header, lines and totals.
#[derive(Debug, Default)]
pub struct Received {
    header: pb::BonusStatementHeader,
    lines: Vec<pb::BonusStatementLine>,
    totals: pb::BonusStatementTotals,
}

pub async fn run_export(args: ExportArgs) -> Result<()> {
    let format = output_format(args.out.as_deref())?;
    let mut points = points_client(&args.client).await?;
    let key = args.client.key_for(Scope::Export);
    let request = pb::ExportBonusStatementRequest {
        county_code: args.county.clone().unwrap_or_default(),
        quarter: args.quarter.clone(),
    };
    let mut stream = points
        .export_bonus_statement(authorized(request, key.as_deref()))
        .await
        .map_err(|status| call_failed("ExportBonusStatement", status))?
        .into_inner();

    let progress = if std::io::stderr().is_terminal() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} agents")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut received = Received::default();
    let mut totals = None;
    while let Some(message) = stream
        .message()
        .await
        .map_err(|status| call_failed("ExportBonusStatement", status))?
    {
        use pb::export_bonus_statement_response::Part;
        match message.part {
            Some(Part::Header(header)) => {
                progress.set_length(u64::try_from(header.line_count).unwrap_or(0));
                progress.set_message(format!("{} {}", header.county_code, header.quarter));
                received.header = header;
            }
            Some(Part::Line(line)) => {
                received.lines.push(line);
                progress.inc(1);
            }
            Some(Part::Totals(sum)) => totals = Some(sum),
            None => {}
        }
    }
    progress.finish_and_clear();
    received.totals = totals.ok_or_else(|| {
        job_error(
            ExitCode::Unavailable,
            "the statement stream ended before its totals; run the export again",
        )
    })?;
    check_totals(&received)?;

    let bytes = match format {
        OutputFormat::Csv => csv_bytes(&received)?,
        OutputFormat::Xlsx => xlsx_bytes(&received)?,
    };
    match &args.out {
        Some(path) => write_atomically(path, &bytes)?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes).map_err(|err| {
                job_error(
                    ExitCode::Output,
                    format!("failed to write standard output: {err}"),
                )
            })?;
        }
    }
    let header = &received.header;
    if !header.closed {
        eprintln!(
            "warning: quarter {} of county {} is not closed yet, so this statement may still change; close it with `daiban close-quarter`",
            header.quarter, header.county_code
        );
    }
    eprintln!(
        "exported {} agents of county {} for {}: {} points, {} yuan",
        received.totals.agents,
        header.county_code,
        header.quarter,
        format_points(received.totals.points_tenths),
        format_yuan(received.totals.bonus_fen)
    );
    Ok(())
}

/// Checks that the lines add up to the totals the service sent.
fn check_totals(received: &Received) -> Result<()> {
    let lines = &received.lines;
    let points: i64 = lines.iter().map(|l| l.points_tenths).sum();
    let bonus: i64 = lines.iter().map(|l| l.bonus_fen).sum();
    let totals = &received.totals;
    let count_matches = usize::try_from(totals.agents).ok() == Some(lines.len())
        && usize::try_from(received.header.line_count).ok() == Some(lines.len());
    if count_matches && points == totals.points_tenths && bonus == totals.bonus_fen {
        Ok(())
    } else {
        Err(job_error(
            ExitCode::Unavailable,
            format!(
                "the statement's {} lines do not add up to its totals ({} agents, {} tenths, {} fen); run the export again",
                lines.len(),
                totals.agents,
                totals.points_tenths,
                totals.bonus_fen
            ),
        ))
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it, so a
/// reader never sees half a statement.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let failed = |err: std::io::Error| {
        job_error(
            ExitCode::Output,
            format!("failed to write {}: {err}", path.display()),
        )
    };
    std::fs::write(&partial, bytes).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}

fn china_time(time: &prost_types::Timestamp) -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    DateTime::<Utc>::from_timestamp(time.seconds, 0)
        .map(|t| {
            t.with_timezone(&china)
                .format("%Y-%m-%d %H:%M:%S (UTC+8)")
                .to_string()
        })
        .unwrap_or_default()
}

fn role_text(role: i32) -> &'static str {
    match pb::AgentRole::try_from(role) {
        Ok(pb::AgentRole::GridWorker) => AgentRole::GridWorker.as_str(),
        Ok(pb::AgentRole::VillageCadre) => AgentRole::VillageCadre.as_str(),
        Ok(pb::AgentRole::AuxiliaryPolice) => AgentRole::AuxiliaryPolice.as_str(),
        _ => "",
    }
}

/// Turns the received statement into the one the file writers take. The
/// writers sum the lines, which `check_totals` found equal to the totals
/// the service sent.
fn statement(received: &Received) -> Result<Statement> {
    let header = &received.header;
    let invalid = |what: &str| {
        job_error(
            ExitCode::Failure,
            format!("the service sent an invalid {what} in the statement header"),
        )
    };
    let close_time = match (&header.close_time, header.closed) {
        (Some(time), true) => Some(
            DateTime::<Utc>::from_timestamp(time.seconds, 0)
                .ok_or_else(|| invalid("close time"))?,
        ),
        _ => None,
    };
    let lines = received
        .lines
        .iter()
        .map(|line| StatementLine {
            agent_id: line.agent_id.clone(),
            name: line.name.clone(),
            grid_code: line.grid_code.clone(),
            grid_name: line.grid_name.clone(),
            township_code: line.township_code.clone(),
            township_name: line.township_name.clone(),
            role: role_text(line.role).to_owned(),
            class1_orders: line.class1_orders.into(),
            class2_orders: line.class2_orders.into(),
            satisfied: line.satisfied.into(),
            unsatisfied: line.unsatisfied.into(),
            points_tenths: line.points_tenths,
            bonus_fen: line.bonus_fen,
        })
        .collect();
    Ok(Statement {
        county: CountyCode::parse(&header.county_code).map_err(|_| invalid("county"))?,
        quarter: Quarter::parse(&header.quarter).map_err(|_| invalid("quarter"))?,
        close_time,
        fen_per_point: header.fen_per_point,
        lines,
    })
}

/// Builds the CSV file of `daiban_points::statement_file`.
pub fn csv_bytes(received: &Received) -> Result<Vec<u8>> {
    statement_file::csv_bytes(&statement(received)?)
        .map_err(|err| job_error(ExitCode::Failure, err.to_string()))
}

/// Builds the XLSX file of `daiban_points::statement_file`; a closed
/// quarter's file repeats byte for byte.
pub fn xlsx_bytes(received: &Received) -> Result<Vec<u8>> {
    statement_file::xlsx_bytes(&statement(received)?)
        .map_err(|err| job_error(ExitCode::Failure, err.to_string()))
}

pub async fn run_close(args: CloseArgs) -> Result<()> {
    let mut points = points_client(&args.client).await?;
    let key = args.client.key_for(Scope::Admin);
    let request = pb::CloseQuarterRequest {
        county_code: args.county.clone().unwrap_or_default(),
        quarter: args.quarter.clone(),
    };
    let closed = points
        .close_quarter(authorized(request, key.as_deref()))
        .await
        .map_err(|status| call_failed("CloseQuarter", status))?
        .into_inner();
    let totals = closed.totals.unwrap_or_default();
    println!(
        "closed {} of county {} at {}: {} agents, {} points, {} yuan at {} yuan per point",
        closed.quarter,
        closed.county_code,
        closed
            .close_time
            .as_ref()
            .map(china_time)
            .unwrap_or_default(),
        totals.agents,
        format_points(totals.points_tenths),
        format_yuan(totals.bonus_fen),
        format_yuan(closed.fen_per_point)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received() -> Received {
        Received {
            header: pb::BonusStatementHeader {
                county_code: "431127".into(),
                quarter: "2026Q3".into(),
                closed: true,
                close_time: Some(prost_types::Timestamp {
                    seconds: 1_790_816_400,
                    nanos: 0,
                }),
                fen_per_point: 1000,
                line_count: 1,
            },
            lines: vec![pb::BonusStatementLine {
                agent_id: "A0001".into(),
                name: "邓燕".into(),
                grid_code: "431127100008".into(),
                grid_name: "友谊村委会".into(),
                township_code: "431127100".into(),
                township_name: "塔峰镇".into(),
                role: pb::AgentRole::GridWorker as i32,
                class1_orders: 1,
                class2_orders: 1,
                satisfied: 1,
                unsatisfied: 0,
                points_tenths: 45,
                bonus_fen: 4500,
            }],
            totals: pb::BonusStatementTotals {
                agents: 1,
                class1_orders: 1,
                class2_orders: 1,
                satisfied: 1,
                unsatisfied: 0,
                points_tenths: 45,
                bonus_fen: 4500,
            },
        }
    }

    #[test]
    fn csv_has_bom_header_and_totals() {
        let bytes = csv_bytes(&received()).unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "UTF-8 byte order mark");
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
        let expected = "帮办员积分奖励明细表\n\
                        县,431127\n\
                        季度,2026Q3\n\
                        状态,已结账\n\
                        结账时间,2026-10-01 09:00:00 (UTC+8)\n\
                        每分奖励（元）,10.00\n\
                        \"\"\n\
                        帮办员编号,姓名,网格,乡镇,角色,一类工单,二类工单,满意,不满意,积分,奖励（元）\n\
                        A0001,邓燕,友谊村委会,塔峰镇,网格员,1,1,1,0,4.5,45.00\n\
                        合计,1人,,,,1,1,1,0,4.5,45.00\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn xlsx_repeats_byte_for_byte() {
        let first = xlsx_bytes(&received()).unwrap();
        let second = xlsx_bytes(&received()).unwrap();
        assert!(first.starts_with(b"PK"), "an XLSX file is a zip archive");
        assert_eq!(first, second, "the same statement gives the same bytes");
    }

    #[test]
    fn extension_picks_format() {
        assert_eq!(output_format(None).unwrap(), OutputFormat::Csv);
        let format = |name: &str| output_format(Some(Path::new(name)));
        assert_eq!(format("q3.CSV").unwrap(), OutputFormat::Csv);
        assert_eq!(format("out/q3.xlsx").unwrap(), OutputFormat::Xlsx);
        let err = format("q3.txt").unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::Usage as u8);
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        let code = |status: tonic::Status| exit_code(&call_failed("call", status));
        assert_eq!(code(tonic::Status::invalid_argument("x")), 3);
        assert_eq!(code(tonic::Status::failed_precondition("x")), 3);
        assert_eq!(code(tonic::Status::permission_denied("x")), 4);
        assert_eq!(code(tonic::Status::unavailable("x")), 5);
        assert_eq!(code(tonic::Status::internal("x")), 1);
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
    }
}
