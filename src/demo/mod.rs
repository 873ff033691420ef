//! The seeded generators the demo job, the tests and the benchmark use (`costsplit
//! generate`: FOCUS, or a CUR 2.0 export with split cost allocation data). Not a billing
//! source: nothing here is read as a real bill.

use std::io::Write;
use std::path::Path;

use polars::prelude::{DataFrame, NamedFrom, ParquetCompression, ParquetWriter, Series};

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

/// Writes `rows` to one parquet file (snappy), each row group a frame `frame` makes of at most
/// 256k rows, so memory stays flat; returns the number of rows.
pub(crate) fn write_parquet<R>(
    path: &Path,
    rows: impl Iterator<Item = R>,
    frame: impl Fn(&[R]) -> anyhow::Result<DataFrame>,
) -> anyhow::Result<usize> {
    let mut file = Some(std::fs::File::create(path)?);
    let mut writer: Option<polars::io::parquet::write::BatchedWriter<std::fs::File>> = None;
    let mut rows = rows.peekable();
    let mut count = 0;
    while rows.peek().is_some() {
        let chunk: Vec<R> = rows.by_ref().take(1 << 18).collect();
        count += chunk.len();
        let df = frame(&chunk)?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(
                ParquetWriter::new(file.take().expect("file used once"))
                    .with_compression(ParquetCompression::Snappy)
                    .batched(df.schema())?,
            ),
        };
        w.write_batch(&df)?;
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(count)
}

/// Column `i` of `rows` as a text series named `name`, empty cells as nulls.
pub(crate) fn text_column<const N: usize>(name: &str, rows: &[[String; N]], i: usize) -> Series {
    let values: Vec<Option<&str>> = rows
        .iter()
        .map(|r| Some(r[i].as_str()).filter(|v| !v.is_empty()))
        .collect();
    Series::new(name.into(), values)
}
