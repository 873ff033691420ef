//! Port's catalog: the entities of one blueprint (`service` by default) read with
//! `POST /v1/blueprints/{blueprint}/entities/search` (`limit`, and the previous answer's
//! `next` as `from`), after `POST /v1/auth/access_token` with the client id and secret.
//! An entity's `identifier` is the service (or a property the settings name), its `team`
//! the team, and two properties the Slack channel and cost center.

use serde_json::{json, Value};

use super::{default_page, default_timeout, Api, Catalog, CatalogError, CatalogService};

/// `[catalog.port]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    /// Port's API: `https://api.getport.io` (EU) or `https://api.us.getport.io` (US).
    #[serde(default = "default_url")]
    pub url: String,
    /// The environment variables holding the client id and secret (Port: Credentials).
    pub client_id_env: String,
    pub client_secret_env: String,
    #[serde(default = "default_blueprint")]
    pub blueprint: String,
    /// A property naming the service tag value (default: the entity's identifier).
    #[serde(default)]
    pub service_property: Option<String>,
    #[serde(default = "default_slack")]
    pub slack_property: String,
    #[serde(default = "default_cost_center")]
    pub cost_center_property: String,
    /// Entities per page (Port allows 1 to 1,000).
    #[serde(default = "default_page")]
    pub page_size: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_url() -> String {
    "https://api.getport.io".to_string()
}
fn default_blueprint() -> String {
    "service".to_string()
}
fn default_slack() -> String {
    "slack".to_string()
}
fn default_cost_center() -> String {
    "cost_center".to_string()
}
/// A property as text: a string, or a number's text.
fn property(entity: &Value, name: &str) -> Option<String> {
    match entity.get("properties")?.get(name)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One entity as a service: `team` is a string or a list of team names (the first is the
/// owner).
fn service(entity: &Value, settings: &PortSettings) -> Option<CatalogService> {
    let identifier = entity.get("identifier")?.as_str()?.trim().to_string();
    let name = settings
        .service_property
        .as_deref()
        .and_then(|p| property(entity, p))
        .unwrap_or_else(|| identifier.clone());
    let team = match entity.get("team") {
        Some(Value::String(t)) => t.trim().to_string(),
        Some(Value::Array(teams)) => teams
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .find(|t| !t.is_empty())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    Some(CatalogService {
        service: name.to_lowercase(),
        team,
        cost_center: property(entity, &settings.cost_center_property).unwrap_or_default(),
        slack_channel: property(entity, &settings.slack_property),
        aliases: Vec::new(),
        origin: format!("port {}:{identifier}", settings.blueprint),
        line: 0,
    })
}

/// Reads the blueprint's entities page by page.
pub async fn fetch_port(
    settings: &PortSettings,
    client_id: &str,
    client_secret: &str,
) -> Result<(Catalog, Vec<String>), CatalogError> {
    let api = Api::new(&settings.url, settings.timeout_seconds)?;
    let auth = api
        .client
        .post(format!("{}/v1/auth/access_token", api.base))
        .json(&json!({"clientId": client_id, "clientSecret": client_secret}));
    let token = api
        .json("the access token request", auth)
        .await?
        .get("accessToken")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| api.fail("the access token answer has no `accessToken`".to_string()))?;
    let url = format!(
        "{}/v1/blueprints/{}/entities/search",
        api.base, settings.blueprint
    );
    let mut from: Option<String> = None;
    let mut services = Vec::new();
    for page in 1.. {
        let mut body = json!({
            "query": {"combinator": "and", "rules": [
                {"property": "$blueprint", "operator": "=", "value": settings.blueprint}
            ]},
            "limit": settings.page_size.clamp(1, 1000),
        });
        if let Some(next) = &from {
            body["from"] = next.clone().into();
        }
        let request = api.client.post(&url).bearer_auth(&token).json(&body);
        let body = api.json(&format!("page {page}"), request).await?;
        let entities = body
            .get("entities")
            .and_then(Value::as_array)
            .ok_or_else(|| api.fail(format!("page {page} has no `entities`")))?;
        services.extend(entities.iter().filter_map(|e| service(e, settings)));
        from = body
            .get("next")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if from.is_none() || entities.is_empty() {
            break;
        }
    }
    Ok(Catalog::from_services(
        services,
        format!("port {}", api.base),
    ))
}
