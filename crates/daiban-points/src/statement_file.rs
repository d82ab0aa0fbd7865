//! The bonus statement as a file, CSV or XLSX, in Chinese: a title, the
//! county, quarter, status, close time and rate, then one row per agent
//! and a totals row. `daiban export-bonus` and the console's download
//! both write it here.

use chrono::{DateTime, FixedOffset, Utc};
use daiban_domain::{AgentRole, format_points, format_yuan};
use rust_xlsxwriter::{DocProperties, Format, Workbook, XlsxError};

pub use daiban_store::StatementLine;

use crate::Statement;

/// The column titles of the statement's table.
const COLUMNS: [&str; 11] = [
    "帮办员编号",
    "姓名",
    "网格",
    "乡镇",
    "角色",
    "一类工单",
    "二类工单",
    "满意",
    "不满意",
    "积分",
    "奖励（元）",
];

const TITLE: &str = "帮办员积分奖励明细表";

/// A failure to build a statement file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("failed to build the CSV: {0}")]
    Csv(String),
    #[error("failed to build the XLSX: {0}")]
    Xlsx(#[from] XlsxError),
}

fn china_time(time: DateTime<Utc>) -> String {
    let china = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    time.with_timezone(&china)
        .format("%Y-%m-%d %H:%M:%S (UTC+8)")
        .to_string()
}

/// Returns the Chinese name of a role stored as `AgentRole::as_str`, or an
/// empty string for an unknown one.
fn role_name(role: &str) -> &'static str {
    AgentRole::parse(role).map_or("", AgentRole::chinese_name)
}

/// Returns the rows between the title and the table: county, quarter,
/// status, close time and rate, as label and value.
fn header_rows(statement: &Statement) -> Vec<(&'static str, String)> {
    let (status, close_time) = match statement.close_time {
        Some(time) => ("已结账", china_time(time)),
        None => ("未结账，数据可能变化", String::new()),
    };
    vec![
        ("县", statement.county.to_string()),
        ("季度", statement.quarter.to_string()),
        ("状态", status.to_owned()),
        ("结账时间", close_time),
        ("每分奖励（元）", format_yuan(statement.fen_per_point)),
    ]
}

/// Builds the CSV file: a byte order mark (for Excel), the header rows, a
/// blank row, the table and its totals row.
pub fn csv_bytes(statement: &Statement) -> Result<Vec<u8>, FileError> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let write = |writer: &mut csv::Writer<Vec<u8>>, row: Vec<String>| {
        writer
            .write_record(&row)
            .map_err(|err| FileError::Csv(err.to_string()))
    };
    write(&mut writer, vec![TITLE.to_owned()])?;
    for (label, value) in header_rows(statement) {
        write(&mut writer, vec![label.to_owned(), value])?;
    }
    write(&mut writer, vec![String::new()])?;
    write(
        &mut writer,
        COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
    )?;
    for line in &statement.lines {
        let row = vec![
            line.agent_id.clone(),
            line.name.clone(),
            line.grid_name.clone(),
            line.township_name.clone(),
            role_name(&line.role).to_owned(),
            line.class1_orders.to_string(),
            line.class2_orders.to_string(),
            line.satisfied.to_string(),
            line.unsatisfied.to_string(),
            format_points(line.points_tenths),
            format_yuan(line.bonus_fen),
        ];
        write(&mut writer, row)?;
    }
    let totals = statement.totals();
    let row = vec![
        "合计".to_owned(),
        format!("{}人", totals.agents),
        String::new(),
        String::new(),
        String::new(),
        totals.tally.class1_orders.to_string(),
        totals.tally.class2_orders.to_string(),
        totals.tally.satisfied.to_string(),
        totals.tally.unsatisfied.to_string(),
        format_points(totals.tally.points_tenths),
        format_yuan(totals.bonus_fen),
    ];
    write(&mut writer, row)?;
    writer
        .into_inner()
        .map_err(|err| FileError::Csv(err.to_string()))
}

/// Builds the XLSX file with the same rows as the CSV, numbers as numbers.
/// Its creation time is the close time (the Unix epoch for an open
/// quarter's statement), so writing a closed quarter again gives the same
/// bytes.
pub fn xlsx_bytes(statement: &Statement) -> Result<Vec<u8>, FileError> {
    let created = statement.close_time.unwrap_or(DateTime::UNIX_EPOCH);
    let mut workbook = Workbook::new();
    workbook.set_properties(
        &DocProperties::new()
            .set_title(format!(
                "{TITLE} {} {}",
                statement.county, statement.quarter
            ))
            .set_creation_datetime(&created),
    );
    let bold = Format::new().set_bold();
    let points = Format::new().set_num_format("0.0");
    let yuan = Format::new().set_num_format("0.00");

    let sheet = workbook.add_worksheet();
    sheet.set_name(statement.quarter.to_string())?;
    sheet.write_string_with_format(0, 0, TITLE, &bold)?;
    let mut row: u32 = 1;
    for (label, value) in header_rows(statement) {
        sheet.write_string(row, 0, label)?;
        sheet.write_string(row, 1, value)?;
        row += 1;
    }
    row += 1;
    for (column, title) in (0u16..).zip(COLUMNS) {
        sheet.write_string_with_format(row, column, title, &bold)?;
    }
    row += 1;
    for line in &statement.lines {
        sheet.write_string(row, 0, &line.agent_id)?;
        sheet.write_string(row, 1, &line.name)?;
        sheet.write_string(row, 2, &line.grid_name)?;
        sheet.write_string(row, 3, &line.township_name)?;
        sheet.write_string(row, 4, role_name(&line.role))?;
        let counts = [
            line.class1_orders,
            line.class2_orders,
            line.satisfied,
            line.unsatisfied,
        ];
        for (column, value) in (5u16..).zip(counts) {
            sheet.write_number(row, column, count_value(value))?;
        }
        sheet.write_number_with_format(row, 9, tenths_value(line.points_tenths), &points)?;
        sheet.write_number_with_format(row, 10, fen_value(line.bonus_fen), &yuan)?;
        row += 1;
    }
    let totals = statement.totals();
    sheet.write_string_with_format(row, 0, "合计", &bold)?;
    sheet.write_string(row, 1, format!("{}人", totals.agents))?;
    let counts = [
        totals.tally.class1_orders,
        totals.tally.class2_orders,
        totals.tally.satisfied,
        totals.tally.unsatisfied,
    ];
    for (column, value) in (5u16..).zip(counts) {
        sheet.write_number(row, column, count_value(value))?;
    }
    sheet.write_number_with_format(row, 9, tenths_value(totals.tally.points_tenths), &points)?;
    sheet.write_number_with_format(row, 10, fen_value(totals.bonus_fen), &yuan)?;
    sheet.set_column_width(0, 12)?;
    sheet.set_column_width(2, 18)?;
    sheet.set_column_width(10, 12)?;
    Ok(workbook.save_to_buffer()?)
}

// A spreadsheet stores every number as a double. Counts stay far below
// 2^53, and these divisions give the double nearest the exact decimal,
// which displays exactly with the cell's format.
fn count_value(count: i64) -> f64 {
    count as f64
}

fn tenths_value(tenths: i64) -> f64 {
    tenths as f64 / 10.0
}

fn fen_value(fen: i64) -> f64 {
    fen as f64 / 100.0
}
