//! Billing exports pulled from S3, as AWS writes them: Data Exports (CUR 2.0, FOCUS) with a
//! manifest per billing period under `metadata/BILLING_PERIOD=YYYY-MM/` and the parts under
//! `data/BILLING_PERIOD=YYYY-MM/<execution>/`, or the legacy CUR with a manifest per period
//! folder `YYYYMMDD-YYYYMMDD/`. One listing of the prefix tells which periods exist and a
//! fingerprint of each (its manifest's and its data objects' ETags), so a period is downloaded
//! again only when AWS rewrote it. Parts are streamed to files, never held in memory. Reads
//! only: `jobs::sync_exports` decides what to import and writes the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// An `[[exports]]` entry of `costsplit.toml`: where an export lives and who may read it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSource {
    /// How runs name it (default: `bucket/prefix`).
    #[serde(default)]
    pub name: Option<String>,
    pub bucket: String,
    /// The export's folder: the one holding `data/` and `metadata/` (Data Exports) or the
    /// `YYYYMMDD-YYYYMMDD/` period folders (legacy CUR).
    #[serde(default)]
    pub prefix: String,
    /// `cur2`, `focus` or `legacy-cur`: which layout to look for. The files themselves are
    /// recognised by their columns.
    pub format: String,
    /// The billing (payer) account the export belongs to; an export holding another account's
    /// bill is refused.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    /// Another endpoint (a VPC endpoint, a test stand-in); `AWS_ENDPOINT_URL` works too.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Billing periods before this month (`YYYY-MM`) are left alone.
    #[serde(default)]
    pub since: Option<String>,
    /// Who sums the line items of a changed period: `local` (costsplit downloads and reads
    /// the parts) or `athena` (an UNLOAD of the generated query; the settings below).
    #[serde(default)]
    pub engine: ExportEngine,
    /// Athena: the workgroup the queries run in (its limits apply).
    #[serde(default)]
    pub workgroup: Option<String>,
    /// Athena: the data catalog (default `AwsDataCatalog`), database and table over the export.
    #[serde(default)]
    pub catalog: Option<String>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    /// Athena: `s3://bucket/prefix/` for query results and costsplit's UNLOADs.
    #[serde(default)]
    pub output_location: Option<String>,
    /// Athena: SQL keeping one period's partition, `{period}` as `YYYY-MM`, `{year}` and
    /// `{month}` (1-12) its parts (default `billing_period = '{period}'`, the partition of a
    /// Data Exports table; for legacy-cur `year = '{year}' AND month = '{month}'`, the
    /// partitions of AWS's CUR-to-Athena table; empty for none).
    #[serde(default)]
    pub partition_filter: Option<String>,
    /// Athena: the price of a TB scanned (default 5.00).
    #[serde(default)]
    pub scan_price_per_tb: Option<String>,
    /// Athena: how long a query may run before it is stopped (default 1800).
    #[serde(default)]
    pub query_timeout_secs: Option<u64>,
}

/// Who sums an export's line items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportEngine {
    #[default]
    Local,
    Athena,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// How AWS lays an export out in its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Data Exports (CUR 2.0, FOCUS): `metadata/BILLING_PERIOD=YYYY-MM/*Manifest.json`.
    DataExports,
    /// Legacy CUR: `YYYYMMDD-YYYYMMDD/*-Manifest.json`.
    LegacyCur,
}

impl ExportSource {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!("{}/{}", self.bucket, self.prefix.trim_matches('/'))
                .trim_end_matches('/')
                .to_string()
        })
    }

    pub fn layout(&self) -> Result<Layout, ExportSettingError> {
        match self.format.as_str() {
            "cur2" | "focus" => Ok(Layout::DataExports),
            "legacy-cur" => Ok(Layout::LegacyCur),
            other => Err(ExportSettingError::Format {
                export: self.name(),
                format: other.to_string(),
            }),
        }
    }

    /// The Athena settings, checked, when the export's engine is Athena.
    pub fn athena(&self) -> Result<Option<super::athena::AthenaTarget>, ExportSettingError> {
        use super::engine::EngineFormat;
        if self.engine != ExportEngine::Athena {
            let set = [
                ("workgroup", self.workgroup.is_some()),
                ("database", self.database.is_some()),
                ("table", self.table.is_some()),
                ("output_location", self.output_location.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(ExportSettingError::Athena {
                    export: self.name(),
                    problem: format!(
                        "`{key}` is an Athena setting: add engine = \"athena\" or remove it"
                    ),
                });
            }
            return Ok(None);
        }
        let problem = |problem: String| ExportSettingError::Athena {
            export: self.name(),
            problem,
        };
        let format = match self.format.as_str() {
            "cur2" => EngineFormat::Cur2,
            "focus" => EngineFormat::Focus,
            "legacy-cur" => EngineFormat::LegacyCur,
            other => {
                return Err(problem(format!(
                    "format `{other}`: use cur2, focus or legacy-cur"
                )))
            }
        };
        let required = |key: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| problem(format!("`{key}` is required with engine = \"athena\"")))
        };
        let database = required("database", &self.database)?;
        let table = required("table", &self.table)?;
        let output = required("output_location", &self.output_location)?;
        let (output_bucket, output_prefix) =
            super::athena::split_s3_uri(&output).ok_or_else(|| {
                problem(format!(
                    "output_location `{output}`: write an S3 folder, s3://bucket/prefix/"
                ))
            })?;
        let price_text = self
            .scan_price_per_tb
            .as_deref()
            .unwrap_or(super::athena::DEFAULT_PRICE_PER_TB);
        let price_per_tb = super::athena::parse_price(price_text).ok_or_else(|| {
            problem(format!(
                "scan_price_per_tb `{price_text}`: write the price of a TB scanned, as 5.00"
            ))
        })?;
        Ok(Some(super::athena::AthenaTarget {
            format,
            workgroup: self.workgroup.clone().unwrap_or_else(|| "primary".into()),
            catalog: self
                .catalog
                .clone()
                .unwrap_or_else(|| "AwsDataCatalog".into()),
            database,
            table,
            output_bucket,
            output_prefix,
            partition_filter: self
                .partition_filter
                .clone()
                .unwrap_or_else(|| match format {
                    // The partitions of the table AWS's CUR-to-Athena integration makes.
                    EngineFormat::LegacyCur => "year = '{year}' AND month = '{month}'".into(),
                    _ => "billing_period = '{period}'".into(),
                }),
            price_per_tb,
            timeout: Duration::from_secs(self.query_timeout_secs.unwrap_or(1800).max(1)),
        }))
    }

    /// Checks what serde cannot. Messages say what to write.
    pub fn validate(&self) -> Result<(), ExportSettingError> {
        self.layout()?;
        self.athena()?;
        if self.bucket.trim().is_empty() {
            return Err(ExportSettingError::EmptyBucket);
        }
        if let Some(since) = &self.since {
            if crate::model::month_bounds(since).is_none() {
                return Err(ExportSettingError::Since {
                    export: self.name(),
                    since: since.clone(),
                });
            }
        }
        Ok(())
    }
}

/// An `[[exports]]` entry that cannot work, said as what to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportSettingError {
    #[error("[[exports]] `{export}`: format `{format}`: use cur2, focus or legacy-cur")]
    Format { export: String, format: String },
    #[error("[[exports]]: bucket is empty")]
    EmptyBucket,
    #[error("[[exports]] `{export}`: since `{since}`: write a month as YYYY-MM")]
    Since { export: String, since: String },
    #[error("[[exports]] `{export}`: {problem}")]
    Athena { export: String, problem: String },
}

/// An S3 request that failed: what was asked, and S3's answer (never a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct S3Failed(pub String);

/// The SDK configuration of the export's AWS calls (S3 and Athena alike).
pub async fn sdk_config(source: &ExportSource) -> aws_config::SdkConfig {
    super::aws::sdk_config(super::aws::Access {
        region: &source.region,
        endpoint_url: source.endpoint_url.as_deref(),
        profile: source.profile.as_deref(),
        role_arn: source.role_arn.as_deref(),
        external_id: source.external_id.as_deref(),
        max_attempts: 5,
        initial_backoff: Duration::from_millis(500),
    })
    .await
}

/// An S3 client for the export: path-style addressing when an endpoint is given.
pub async fn client(source: &ExportSource) -> Client {
    let config = sdk_config(source).await;
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(source.endpoint_url.is_some())
        .build();
    Client::from_conf(s3)
}

/// An S3 client from the environment alone (`import --facts s3://…`): the standard
/// credential chain, `AWS_REGION` (default us-east-1), `AWS_ENDPOINT_URL` (then path-style).
pub async fn env_client() -> Client {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| default_region());
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok();
    let config = super::aws::sdk_config(super::aws::Access {
        region: &region,
        endpoint_url: endpoint.as_deref(),
        profile: None,
        role_arn: None,
        external_id: None,
        max_attempts: 5,
        initial_backoff: Duration::from_millis(500),
    })
    .await;
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(endpoint.is_some())
        .build();
    Client::from_conf(s3)
}

/// Downloads every object under the S3 folder `uri` (`s3://bucket/prefix`) into `dir`, as
/// parquet files (an engine's facts: UNLOAD names its files without an extension). Returns
/// (local file, `s3://` URI) pairs, oldest key first.
pub async fn download_folder(
    client: &Client,
    uri: &str,
    dir: &Path,
) -> Result<Vec<(PathBuf, String)>, String> {
    let (bucket, prefix) = super::athena::split_s3_uri(uri)
        .ok_or_else(|| format!("`{uri}`: write an S3 folder as s3://bucket/prefix/"))?;
    let listing = list_under(client, &bucket, &prefix)
        .await
        .map_err(|e| e.0)?;
    let mut files = Vec::new();
    for (key, object) in &listing.objects {
        // Folder markers, Spark's _SUCCESS and Athena's metadata are not facts.
        let name = key.rsplit('/').next().unwrap_or_default();
        if object.size == 0
            || name.starts_with(['_', '.'])
            || name.ends_with(".metadata")
            || name.ends_with(".csv")
        {
            continue;
        }
        let local = dir.join(format!("{:05}.parquet", files.len()));
        stream_to_file(client, &bucket, key, &local).await?;
        files.push((local, format!("s3://{bucket}/{key}")));
    }
    if files.is_empty() {
        return Err(format!("{uri} holds no facts files"));
    }
    Ok(files)
}

/// An object as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub etag: String,
    pub size: i64,
}

/// Every object under the export's prefix, and the requests it took.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: BTreeMap<String, Object>,
    pub requests: i64,
}

/// Lists the export's prefix, following continuation tokens.
pub async fn list(client: &Client, source: &ExportSource) -> Result<Listing, S3Failed> {
    list_under(
        client,
        &source.bucket,
        source.prefix.trim_start_matches('/'),
    )
    .await
}

/// Lists every object under `prefix` in `bucket`, following continuation tokens.
pub async fn list_under(client: &Client, bucket: &str, prefix: &str) -> Result<Listing, S3Failed> {
    let mut listing = Listing::default();
    let mut token: Option<String> = None;
    loop {
        listing.requests += 1;
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| {
                S3Failed(format!(
                    "listing s3://{bucket}/{prefix}: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                listing.objects.insert(
                    key.to_string(),
                    Object {
                        etag: object.e_tag().unwrap_or_default().to_string(),
                        size: object.size().unwrap_or_default(),
                    },
                );
            }
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok(listing),
        }
    }
}

/// One billing period of an export as the bucket holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM`.
    pub period: String,
    pub manifest_key: String,
    /// Changes whenever the manifest or any object of the period's data folder changes.
    pub fingerprint: String,
    /// Objects in the period's folder (all executions).
    pub objects: usize,
}

/// The billing periods a listing holds, oldest first (each by its current manifest).
pub fn periods(layout: Layout, listing: &Listing) -> Vec<Period> {
    let mut found: BTreeMap<String, Period> = BTreeMap::new();
    for key in listing.objects.keys() {
        let lowered = key.to_ascii_lowercase();
        if !lowered.ends_with("manifest.json") {
            continue;
        }
        let Some((period, folder)) = period_of_manifest(layout, key) else {
            continue;
        };
        let mut hasher = Sha256::new();
        let mut objects = 0;
        for (k, o) in listing
            .objects
            .range(folder.clone()..)
            .take_while(|(k, _)| k.starts_with(&folder))
            .chain(listing.objects.get_key_value(key))
        {
            hasher.update(format!("{k}\t{}\t{}\n", o.etag, o.size).as_bytes());
            objects += 1;
        }
        let fingerprint = hex::encode(&hasher.finalize()[..16]);
        // Legacy CUR also writes a manifest into each assembly folder: the period folder's
        // own (the shortest key) names the current assembly.
        let better = found
            .get(&period)
            .is_none_or(|p| key.len() < p.manifest_key.len());
        if better {
            found.insert(
                period.clone(),
                Period {
                    period,
                    manifest_key: key.clone(),
                    fingerprint,
                    objects,
                },
            );
        }
    }
    found.into_values().collect()
}

/// The period (`YYYY-MM`) of a manifest key and the folder whose objects make that period.
fn period_of_manifest(layout: Layout, key: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = key.split('/').collect();
    match layout {
        Layout::DataExports => {
            let at = parts
                .iter()
                .rposition(|p| p.starts_with("BILLING_PERIOD="))?;
            if at == 0 || parts[at - 1] != "metadata" {
                return None;
            }
            let period = parts[at].trim_start_matches("BILLING_PERIOD=");
            valid_month(period)?;
            let root = parts[..at - 1].join("/");
            let folder = if root.is_empty() {
                format!("data/{}/", parts[at])
            } else {
                format!("{root}/data/{}/", parts[at])
            };
            Some((period.to_string(), folder))
        }
        Layout::LegacyCur => {
            let at = parts.iter().rposition(|p| is_period_range(p))?;
            let period = format!("{}-{}", &parts[at][..4], &parts[at][4..6]);
            valid_month(&period)?;
            Some((period, format!("{}/", parts[..=at].join("/"))))
        }
    }
}

fn is_period_range(part: &str) -> bool {
    part.len() == 17
        && part.as_bytes()[8] == b'-'
        && part
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 8 || b.is_ascii_digit())
}

fn valid_month(period: &str) -> Option<()> {
    crate::model::month_bounds(period).map(|_| ())
}

/// Downloads the parts `period`'s manifest lists into `dir`, streaming each to a file.
/// Returns (local file, `s3://` URI) pairs and the requests made. A part the manifest lists
/// but the bucket lacks, or one that cannot be read, fails the period.
pub async fn download(
    client: &Client,
    source: &ExportSource,
    listing: &Listing,
    period: &Period,
    dir: &Path,
) -> Result<(Vec<(PathBuf, String)>, i64), (String, i64)> {
    let mut requests = 1;
    let uri = |key: &str| format!("s3://{}/{key}", source.bucket);
    let manifest = get_bytes(client, source, &period.manifest_key)
        .await
        .map_err(|e| (e, requests))?;
    let text = String::from_utf8_lossy(&manifest);
    let keys = super::batch::manifest_keys(&text)
        .map_err(|e| (format!("{} {e}", uri(&period.manifest_key)), requests))?;
    let mut files = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if !listing.objects.contains_key(key) {
            return Err((
                format!(
                    "{} lists {} but the bucket has no such object (AWS may be rewriting the period; the next sync tries again)",
                    uri(&period.manifest_key),
                    uri(key)
                ),
                requests,
            ));
        }
        let name = key.rsplit('/').next().unwrap_or("part");
        let local = dir.join(format!("{i:05}-{name}"));
        requests += 1;
        stream_to_file(client, &source.bucket, key, &local)
            .await
            .map_err(|e| (e, requests))?;
        files.push((local, uri(key)));
    }
    Ok((files, requests))
}

/// The body of an object; errors name it.
async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<aws_sdk_s3::primitives::ByteStream, String> {
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|object| object.body)
        .map_err(|e| format!("reading s3://{bucket}/{key}: {}", DisplayErrorContext(&e)))
}

async fn get_bytes(client: &Client, source: &ExportSource, key: &str) -> Result<Vec<u8>, String> {
    let bytes = get_object(client, &source.bucket, key)
        .await?
        .collect()
        .await
        .map_err(|e| format!("reading s3://{}/{key}: {e}", source.bucket))?;
    Ok(bytes.into_bytes().to_vec())
}

/// Streams the object `key` of `bucket` into the file `local`; errors name the object.
pub async fn stream_to_file(
    client: &Client,
    bucket: &str,
    key: &str,
    local: &Path,
) -> Result<(), String> {
    let mut body = get_object(client, bucket, key).await?;
    let written = |e: std::io::Error| format!("writing {}: {e}", local.display());
    let mut file = tokio::fs::File::create(local).await.map_err(written)?;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?;
        file.write_all(&chunk).await.map_err(written)?;
    }
    file.flush().await.map_err(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(keys: &[(&str, &str)]) -> Listing {
        Listing {
            objects: keys
                .iter()
                .map(|(k, etag)| {
                    (
                        k.to_string(),
                        Object {
                            etag: etag.to_string(),
                            size: 10,
                        },
                    )
                })
                .collect(),
            requests: 1,
        }
    }

    #[test]
    fn data_export_periods_are_found_by_their_manifests_and_fingerprinted() {
        let keys = [
            ("cur/x/data/BILLING_PERIOD=2026-03/e1/x-00001.parquet", "a"),
            ("cur/x/data/BILLING_PERIOD=2026-04/e1/x-00001.parquet", "b"),
            ("cur/x/data/BILLING_PERIOD=2026-04/e2/x-00001.parquet", "c"),
            (
                "cur/x/metadata/BILLING_PERIOD=2026-03/x-Manifest.json",
                "m3",
            ),
            (
                "cur/x/metadata/BILLING_PERIOD=2026-04/x-Manifest.json",
                "m4",
            ),
        ];
        let found = periods(Layout::DataExports, &listing(&keys));
        assert_eq!(
            found
                .iter()
                .map(|p| (p.period.as_str(), p.objects))
                .collect::<Vec<_>>(),
            [("2026-03", 2), ("2026-04", 3)]
        );
        // A rewritten part changes its period's fingerprint only.
        let mut changed = keys;
        changed[2].1 = "c2";
        let again = periods(Layout::DataExports, &listing(&changed));
        assert_eq!(again[0].fingerprint, found[0].fingerprint);
        assert_ne!(again[1].fingerprint, found[1].fingerprint);
    }

    #[test]
    fn legacy_cur_periods_use_the_period_folder_manifest() {
        let keys = [
            ("r/name/20231101-20231201/abc/name-1.csv.gz", "a"),
            ("r/name/20231101-20231201/abc/name-Manifest.json", "m1"),
            ("r/name/20231101-20231201/name-Manifest.json", "m"),
        ];
        let found = periods(Layout::LegacyCur, &listing(&keys));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].period, "2023-11");
        assert_eq!(
            found[0].manifest_key,
            "r/name/20231101-20231201/name-Manifest.json"
        );
        assert!(periods(Layout::DataExports, &listing(&keys)).is_empty());
    }
}
