//! The service catalog: fetch an API's catalog into its snapshot (`costsplit catalog sync`,
//! the daemon's `sync_catalog` job), and the catalog in force (`costsplit catalog show`).

use crate::catalog::{self, Catalog, CatalogSettings};
use crate::model::Timestamp;

/// What a catalog sync did.
#[derive(Debug)]
pub struct CatalogSync {
    pub catalog: Catalog,
    /// Duplicates and the like, each a line.
    pub notes: Vec<String>,
    /// Whether a snapshot was written (an API catalog) or the files were only read.
    pub written: bool,
}

impl CatalogSync {
    pub fn summary(&self) -> String {
        let unowned = self.catalog.unowned().count();
        format!(
            "catalog: {} service(s) from {}{}{}",
            self.catalog.services.len(),
            self.catalog.source,
            if unowned > 0 {
                format!(", {unowned} without an owner")
            } else {
                String::new()
            },
            if self.written {
                "; snapshot written"
            } else {
                ""
            }
        )
    }
}

/// Fetches the catalog API into the snapshot (whole, or not at all: a catalog that cannot be
/// reached leaves the last good snapshot in force), or reads the catalog files. `env` reads
/// the token's variable.
pub async fn sync_catalog(
    settings: &CatalogSettings,
    env: &dyn Fn(&str) -> Option<String>,
    now: Timestamp,
) -> anyhow::Result<CatalogSync> {
    let variable = |var: &str, key: &str| {
        env(var).ok_or_else(|| anyhow::anyhow!("[catalog] {key} names {var}, which is not set"))
    };
    let (mut catalog, notes) = match (&settings.backstage, &settings.port) {
        (Some(backstage), _) => {
            let token = match &backstage.token_env {
                Some(var) => Some(variable(var, "backstage.token_env")?),
                None => None,
            };
            catalog::fetch_backstage(settings, backstage, token.as_deref()).await?
        }
        (None, Some(port)) => {
            let id = variable(&port.client_id_env, "port.client_id_env")?;
            let secret = variable(&port.client_secret_env, "port.client_secret_env")?;
            catalog::fetch_port(port, &id, &secret).await?
        }
        (None, None) => {
            let (catalog, notes, _) = settings.load_local()?;
            return Ok(CatalogSync {
                catalog,
                notes,
                written: false,
            });
        }
    };
    if catalog.services.is_empty() {
        anyhow::bail!(
            "the catalog at {} lists no services; the last good snapshot stays in force",
            catalog.source
        );
    }
    catalog.fetched_at = Some(now.to_string());
    catalog::write_snapshot(&settings.snapshot, &catalog)?;
    Ok(CatalogSync {
        catalog,
        notes,
        written: true,
    })
}

/// A service the month's allocations charge that the catalog does not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInCatalog {
    pub service: String,
    /// The team the rules give it (empty: none, a tag value nobody declared).
    pub team: String,
    pub currency: String,
    pub total: crate::money::Nanos,
}

/// The services of the stored allocations over `from..=to` that the catalog does not name
/// (by name or alias), largest first: what to add to the catalog. `unallocated` is not one.
pub async fn not_in_catalog(
    store: &crate::store::Store,
    catalog: &Catalog,
    (from, to): (chrono::NaiveDate, chrono::NaiveDate),
) -> anyhow::Result<Vec<NotInCatalog>> {
    let known: std::collections::HashSet<String> = catalog
        .services
        .iter()
        .flat_map(|s| std::iter::once(&s.service).chain(&s.aliases))
        .map(|s| s.to_lowercase())
        .collect();
    let mut missing: Vec<NotInCatalog> = store
        .service_totals(from, to)
        .await?
        .into_iter()
        .filter(|t| {
            t.service != crate::model::UNALLOCATED && !known.contains(&t.service.to_lowercase())
        })
        .map(|t| NotInCatalog {
            total: t.total(),
            service: t.service,
            team: t.team,
            currency: t.currency,
        })
        .collect();
    missing.sort_by(|a, b| {
        b.total
            .0
            .abs()
            .cmp(&a.total.0.abs())
            .then(a.service.cmp(&b.service))
    });
    Ok(missing)
}
