//! Service ownership from the service catalog the platform team already keeps (Backstage's
//! `catalog-info.yaml` files or its catalog API): each service's owner team, cost center and
//! Slack channel, so they are not typed again into `rules/`. The rules load takes a
//! [`Catalog`] and fills in the services the rules do not declare (rules win, and
//! `rules check` says where the two disagree).
//!
//! A catalog read from files is read at every rules load; one read from an API is fetched by
//! `costsplit catalog sync` (and the daemon's `sync_catalog` job) into a snapshot file, so a
//! catalog that cannot be reached leaves the last good map in force, never an empty one.

mod backstage;
mod port;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use backstage::{fetch_backstage, parse_yaml_files, EntityError};
pub use port::{fetch_port, PortSettings};

/// One service as the catalog states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogService {
    /// The service tag value: the `costsplit.io/service` annotation, else the entity's name.
    pub service: String,
    /// The owner group's name; empty when the component has no owner (listed, not dropped).
    pub team: String,
    /// The nearest cost center annotation: the component's, else its owner group's, else the
    /// group's parents'.
    pub cost_center: String,
    pub slack_channel: Option<String>,
    /// Other tag values of the service: the `costsplit.io/aliases` annotation, comma-separated.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where the catalog says it: the file, or the entity ref for an API.
    pub origin: String,
    /// The line of `origin` (0 for an API).
    #[serde(default)]
    pub line: usize,
}

impl CatalogService {
    /// `catalog/checkout.yaml:12`, or the entity ref for an API.
    pub fn place(&self) -> String {
        if self.line == 0 {
            self.origin.clone()
        } else {
            format!("{}:{}", self.origin, self.line)
        }
    }
}

/// The services of a catalog, sorted by service name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub services: Vec<CatalogService>,
    /// Where it came from (the files, or the API's address) and, for an API, when it was
    /// fetched (RFC 3339).
    pub source: String,
    #[serde(default)]
    pub fetched_at: Option<String>,
}

impl Catalog {
    /// Sorts by service, keeping the first of two entities that name one service (the second
    /// is reported in `notes`).
    pub fn from_services(
        mut services: Vec<CatalogService>,
        source: String,
    ) -> (Catalog, Vec<String>) {
        services.sort_by(|a, b| a.service.cmp(&b.service));
        let mut notes = Vec::new();
        let mut kept: Vec<CatalogService> = Vec::with_capacity(services.len());
        for s in services {
            match kept.last() {
                Some(last) if last.service == s.service => notes.push(format!(
                    "{}: service `{}` is also named by {}; the first one is used",
                    s.place(),
                    s.service,
                    last.place()
                )),
                _ => kept.push(s),
            }
        }
        (
            Catalog {
                services: kept,
                source,
                fetched_at: None,
            },
            notes,
        )
    }

    /// Services that have no owner team in the catalog.
    pub fn unowned(&self) -> impl Iterator<Item = &CatalogService> {
        self.services.iter().filter(|s| s.team.is_empty())
    }

    /// A stable text of the whole map, hashed into the rules hash: a catalog change is a rules
    /// change (the allocations record it and `allocate --dry-run` shows it).
    pub fn fingerprint(&self) -> String {
        self.services
            .iter()
            .map(|s| {
                format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    s.service,
                    s.team,
                    s.cost_center,
                    s.slack_channel.as_deref().unwrap_or(""),
                    s.aliases.join(",")
                )
            })
            .collect()
    }
}

/// `[catalog]` in costsplit.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// `catalog-info.yaml` files, or folders searched for `*.yaml`/`*.yml` files.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Backstage's catalog API.
    #[serde(default)]
    pub backstage: Option<BackstageSettings>,
    /// Port's entities API.
    #[serde(default)]
    pub port: Option<PortSettings>,
    /// Where the last good catalog fetched from an API is kept.
    #[serde(default = "default_snapshot")]
    pub snapshot: PathBuf,
    /// The annotation naming the service tag value (default: the entity's name).
    #[serde(default = "default_service_annotation")]
    pub service_annotation: String,
    #[serde(default = "default_cost_center_annotation")]
    pub cost_center_annotation: String,
    #[serde(default = "default_slack_annotation")]
    pub slack_annotation: String,
    #[serde(default = "default_aliases_annotation")]
    pub aliases_annotation: String,
}

/// `[catalog.backstage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackstageSettings {
    /// The backend's base URL, e.g. `https://backstage.example.com`.
    pub url: String,
    /// The environment variable holding a bearer token (a static external-access token).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Entities per page.
    #[serde(default = "default_page")]
    pub page_size: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_snapshot() -> PathBuf {
    PathBuf::from("costsplit-catalog.json")
}
fn default_service_annotation() -> String {
    "costsplit.io/service".to_string()
}
fn default_cost_center_annotation() -> String {
    "costsplit.io/cost-center".to_string()
}
fn default_slack_annotation() -> String {
    "slack.com/channel".to_string()
}
fn default_aliases_annotation() -> String {
    "costsplit.io/aliases".to_string()
}
pub(crate) fn default_page() -> u32 {
    500
}
pub(crate) fn default_timeout() -> u64 {
    30
}

/// A catalog API at one base URL: the HTTP client, and its answers as JSON or as the error
/// that names the API (never a token: reqwest's errors are stripped of their URL).
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(url: &str, timeout_seconds: u64) -> Result<Api, CatalogError> {
        let base = url.trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(timeout_seconds.max(1)))
            .build()
            .map_err(|e| CatalogError::Api {
                url: base.clone(),
                problem: e.without_url().to_string(),
            })?;
        Ok(Api { base, client })
    }

    fn fail(&self, problem: String) -> CatalogError {
        CatalogError::Api {
            url: self.base.clone(),
            problem,
        }
    }

    /// Sends `request`; its JSON answer, or what went wrong with `what` (e.g. `page 3`).
    async fn json(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, CatalogError> {
        let response = request
            .send()
            .await
            .map_err(|e| self.fail(format!("{what}: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.fail(format!("{what} answered HTTP {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| self.fail(format!("{what} is not JSON: {}", e.without_url())))
    }
}

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file {path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("the catalog snapshot {0} does not exist yet; run `costsplit catalog sync` (the daemon's sync_catalog job writes it too)")]
    NoSnapshot(PathBuf),
    #[error(
        "the catalog snapshot {path} cannot be read: {problem}; run `costsplit catalog sync` again"
    )]
    BadSnapshot { path: PathBuf, problem: String },
    #[error("the catalog API at {url}: {problem}; the last good snapshot stays in force")]
    Api { url: String, problem: String },
}

impl CatalogSettings {
    /// One source: files or an API.
    pub fn validate(&self) -> Result<(), &'static str> {
        let sources = usize::from(!self.files.is_empty())
            + usize::from(self.backstage.is_some())
            + usize::from(self.port.is_some());
        match sources {
            0 => Err("name the catalog: `files = [\"catalog/\"]` (catalog-info.yaml files or folders), a [catalog.backstage] table with its `url`, or a [catalog.port] table"),
            1 => Ok(()),
            _ => Err("give one of `files`, [catalog.backstage] and [catalog.port]"),
        }
    }

    /// Whether an API is the catalog (fetched into the snapshot) rather than files.
    pub fn uses_api(&self) -> bool {
        self.backstage.is_some() || self.port.is_some()
    }

    /// The catalog in force now: the files, read now, or the API's last good snapshot. Also
    /// the files it read (a running daemon watches them).
    pub fn load_local(&self) -> Result<(Catalog, Vec<String>, Vec<PathBuf>), CatalogError> {
        if self.uses_api() {
            let catalog = read_snapshot(&self.snapshot)?;
            return Ok((catalog, Vec::new(), vec![self.snapshot.clone()]));
        }
        let files = yaml_files(&self.files)?;
        let (catalog, notes) = parse_yaml_files(&files, self)?;
        Ok((catalog, notes, files))
    }
}

/// The `*.yaml`/`*.yml` files named, folders searched recursively, sorted.
fn yaml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CatalogError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect(path, &mut out).map_err(|e| CatalogError::File {
                path: path.clone(),
                problem: e.to_string(),
            })?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_snapshot(path: &Path) -> Result<Catalog, CatalogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CatalogError::NoSnapshot(path.to_path_buf()))
        }
        Err(e) => {
            return Err(CatalogError::BadSnapshot {
                path: path.to_path_buf(),
                problem: e.to_string(),
            })
        }
    };
    serde_json::from_str(&text).map_err(|e| CatalogError::BadSnapshot {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })
}

/// Writes the snapshot whole (a temporary file renamed over it), so a reader never sees half.
pub fn write_snapshot(path: &Path, catalog: &Catalog) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut file, catalog)?;
    file.persist(path)?;
    Ok(())
}
