//! The seeded generators the demo job, the tests and the benchmark use (`costsplit
//! generate`: FOCUS, or a CUR 2.0 export with split cost allocation data). Not a billing
//! source: nothing here is read as a real bill.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

pub mod generate;
pub mod split_cost;

/// A CSV writer to `path`, gzip-compressed when the path ends in `.gz`.
pub(crate) fn csv_writer(path: &Path) -> anyhow::Result<csv::Writer<Box<dyn Write>>> {
    let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let out: Box<dyn Write> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(file)
    };
    Ok(csv::Writer::from_writer(out))
}

/// Rows per row group of a generated parquet file.
const ROW_GROUP: usize = 1 << 18;

/// Writes `rows` to one parquet file (snappy, with arrow-rs, the crate the importer reads
/// with), each row group a batch `batch` makes of at most 256k rows, so memory stays flat;
/// returns the number of rows.
pub(crate) fn write_parquet<R>(
    path: &Path,
    rows: impl Iterator<Item = R>,
    batch: impl Fn(&[R]) -> anyhow::Result<RecordBatch>,
) -> anyhow::Result<usize> {
    let mut file = Some(std::fs::File::create(path)?);
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut rows = rows.peekable();
    let mut count = 0;
    while rows.peek().is_some() {
        let chunk: Vec<R> = rows.by_ref().take(ROW_GROUP).collect();
        count += chunk.len();
        let batch = batch(&chunk)?;
        let w = match &mut writer {
            Some(w) => w,
            None => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP))
                    .build();
                writer.insert(ArrowWriter::try_new(
                    file.take().expect("file used once"),
                    batch.schema(),
                    Some(properties),
                )?)
            }
        };
        w.write(&batch)?;
        w.flush()?;
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(count)
}

/// Column `i` of `rows` as text, empty cells as nulls.
pub(crate) fn text_column<const N: usize>(rows: &[[String; N]], i: usize) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(|r| Some(r[i].as_str()).filter(|v| !v.is_empty()))
            .collect::<StringArray>(),
    )
}

/// Column `i` of `rows` as float64 (how many exporters write costs), empty cells as nulls.
pub(crate) fn float_column<const N: usize>(
    rows: &[[String; N]],
    i: usize,
) -> anyhow::Result<ArrayRef> {
    let values = rows
        .iter()
        .map(|r| match r[i].as_str() {
            "" => Ok(None),
            v => v
                .parse::<f64>()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("`{v}` is not a number")),
        })
        .collect::<anyhow::Result<Vec<Option<f64>>>>()?;
    Ok(Arc::new(Float64Array::from(values)))
}

/// Column `i` of `rows` (RFC 3339 text) as UTC timestamps in microseconds.
pub(crate) fn timestamp_column<const N: usize>(rows: &[[String; N]], i: usize) -> ArrayRef {
    let values: Vec<Option<i64>> = rows
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(&r[i])
                .ok()
                .map(|t| t.timestamp_micros())
        })
        .collect();
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

/// A batch of `columns`, named.
pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> anyhow::Result<RecordBatch> {
    Ok(RecordBatch::try_from_iter(columns)?)
}
