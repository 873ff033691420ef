//! Backstage's catalog model, read from `catalog-info.yaml` files or from the catalog API
//! (`/api/catalog/entities/by-query`, cursor-paginated, bearer token): `Component` entities
//! are the services, their `spec.owner` the team, `Group` entities (and their `spec.parent`
//! chain) give the cost center and Slack channel a component does not carry itself.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;

use super::{Api, BackstageSettings, Catalog, CatalogError, CatalogService, CatalogSettings};

/// An entity of the catalog, as far as ownership needs it.
#[derive(Debug, Clone)]
struct Entity {
    kind: String,
    namespace: String,
    name: String,
    annotations: BTreeMap<String, String>,
    owner: Option<String>,
    parent: Option<String>,
    origin: String,
    line: usize,
}

/// Why a catalog document is not an entity.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EntityError(String);

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn entity(value: &Value, origin: String, line: usize) -> Result<Option<Entity>, EntityError> {
    if value.is_null() {
        return Ok(None);
    }
    let kind = text(value, &["kind"])
        .ok_or_else(|| EntityError("an entity without `kind`".to_string()))?
        .to_ascii_lowercase();
    let name = text(value, &["metadata", "name"])
        .ok_or_else(|| EntityError("an entity without `metadata.name`".to_string()))?;
    let annotations = value
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.trim().to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Entity {
        kind,
        namespace: text(value, &["metadata", "namespace"]).unwrap_or_else(|| "default".into()),
        name,
        annotations,
        owner: text(value, &["spec", "owner"]),
        parent: text(value, &["spec", "parent"]),
        origin,
        line,
    }))
}

/// `[<kind>:][<namespace>/]<name>` → (kind, namespace, name), lower case, with the defaults
/// the catalog uses (kind `group` for an owner or parent, namespace `default`).
fn entity_ref(reference: &str, default_kind: &str) -> (String, String, String) {
    let (kind, rest) = match reference.split_once(':') {
        Some((kind, rest)) => (kind.to_ascii_lowercase(), rest),
        None => (default_kind.to_string(), reference),
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, name)) => (ns.to_ascii_lowercase(), name),
        None => ("default".to_string(), rest),
    };
    (kind, namespace, name.to_ascii_lowercase())
}

/// Components → services: the owner group's name as the team; the cost center and Slack
/// channel from the component's annotations, else its owner group's (and, for the cost
/// center, the group's parents').
fn services(entities: &[Entity], settings: &CatalogSettings) -> Vec<CatalogService> {
    let groups: HashMap<(String, String), &Entity> = entities
        .iter()
        .filter(|e| e.kind == "group")
        .map(|e| {
            (
                (
                    e.namespace.to_ascii_lowercase(),
                    e.name.to_ascii_lowercase(),
                ),
                e,
            )
        })
        .collect();
    let annotation =
        |e: &Entity, key: &str| e.annotations.get(key).filter(|v| !v.is_empty()).cloned();
    entities
        .iter()
        .filter(|e| e.kind == "component")
        .map(|c| {
            let owner = c.owner.as_deref().map(|o| entity_ref(o, "group"));
            let mut group = owner
                .as_ref()
                .and_then(|(_, ns, name)| groups.get(&(ns.clone(), name.clone())).copied());
            let team = owner
                .as_ref()
                .map(|(_, _, name)| name.clone())
                .unwrap_or_default();
            let slack_channel = annotation(c, &settings.slack_annotation)
                .or_else(|| group.and_then(|g| annotation(g, &settings.slack_annotation)));
            let mut cost_center = annotation(c, &settings.cost_center_annotation);
            let mut hops = 0;
            while let (None, Some(g)) = (&cost_center, group) {
                cost_center = annotation(g, &settings.cost_center_annotation);
                hops += 1;
                group = g
                    .parent
                    .as_deref()
                    .map(|p| entity_ref(p, "group"))
                    .and_then(|(_, ns, name)| groups.get(&(ns, name)).copied())
                    .filter(|_| hops < 32);
            }
            CatalogService {
                service: annotation(c, &settings.service_annotation)
                    .unwrap_or_else(|| c.name.clone())
                    .to_lowercase(),
                team,
                cost_center: cost_center.unwrap_or_default(),
                slack_channel,
                aliases: annotation(c, &settings.aliases_annotation)
                    .map(|a| {
                        a.split(',')
                            .map(|x| x.trim().to_lowercase())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                origin: c.origin.clone(),
                line: c.line,
            }
        })
        .collect()
}

/// The YAML documents of a file with the line each starts on (documents are separated by
/// `---` lines).
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") && line[3..].trim().is_empty() {
            docs.push((i + 2, String::new()));
            continue;
        }
        let doc = &mut docs.last_mut().expect("one document").1;
        doc.push_str(line);
        doc.push('\n');
    }
    docs.retain(|(_, d)| !d.trim().is_empty());
    docs
}

/// Reads `catalog-info.yaml` files: every document an entity (other kinds than `Component`
/// and `Group` are read and left alone).
pub fn parse_yaml_files(
    files: &[PathBuf],
    settings: &CatalogSettings,
) -> Result<(Catalog, Vec<String>), CatalogError> {
    let mut entities = Vec::new();
    for path in files {
        let bad = |problem: String| CatalogError::File {
            path: path.clone(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        for (start, doc) in documents(&text) {
            let value: Value = serde_norway::from_str(&doc).map_err(|e| {
                let line = e.location().map_or(start, |l| start + l.line() - 1);
                bad(format!("line {line}: not YAML: {e}"))
            })?;
            if let Some(e) = entity(&value, path.display().to_string(), start)
                .map_err(|e| bad(format!("line {start}: {e}")))?
            {
                entities.push(e);
            }
        }
    }
    let source = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Catalog::from_services(
        services(&entities, settings),
        source,
    ))
}

/// Reads the components and groups of a Backstage backend's catalog API, page by page.
pub async fn fetch_backstage(
    settings: &CatalogSettings,
    backstage: &BackstageSettings,
    token: Option<&str>,
) -> Result<(Catalog, Vec<String>), CatalogError> {
    let api = Api::new(&backstage.url, backstage.timeout_seconds)?;
    let url = format!("{}/api/catalog/entities/by-query", api.base);
    let mut cursor: Option<String> = None;
    let mut entities = Vec::new();
    for page in 1.. {
        let limit = backstage.page_size.max(1).to_string();
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
        match &cursor {
            Some(c) => query.push(("cursor", c)),
            None => {
                query.push(("filter", "kind=component"));
                query.push(("filter", "kind=group"));
            }
        }
        let mut request = api.client.get(&url).query(&query);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let body = api.json(&format!("page {page}"), request).await?;
        let items = body
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| api.fail(format!("page {page} has no `items`")))?;
        for item in items {
            let origin = entity_origin(item);
            if let Some(e) = entity(item, origin, 0).map_err(|e| api.fail(e.to_string()))? {
                entities.push(e);
            }
        }
        cursor = body
            .get("pageInfo")
            .and_then(|p| p.get("nextCursor"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() || items.is_empty() {
            break;
        }
    }
    Ok(Catalog::from_services(
        services(&entities, settings),
        format!("backstage {}", api.base),
    ))
}

/// `component:default/checkout`.
fn entity_origin(item: &Value) -> String {
    format!(
        "{}:{}/{}",
        text(item, &["kind"])
            .unwrap_or_default()
            .to_ascii_lowercase(),
        text(item, &["metadata", "namespace"]).unwrap_or_else(|| "default".into()),
        text(item, &["metadata", "name"]).unwrap_or_default()
    )
}
