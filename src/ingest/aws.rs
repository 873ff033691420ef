//! The AWS SDK configuration every AWS source shares: the standard credential chain (or a
//! named profile), a role assumed on top if configured, an endpoint override (a VPC endpoint,
//! or a local stand-in in tests), the region, and the SDK's standard retry with timeouts.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

/// Who calls AWS, where, and how hard it retries.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub region: &'a str,
    pub endpoint_url: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub role_arn: Option<&'a str>,
    pub external_id: Option<&'a str>,
    /// Attempts per request, including the first, on throttling and 5xx answers.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
}

/// The SDK configuration for `access`.
pub async fn sdk_config(access: Access<'_>) -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(access.max_attempts.max(1))
        .with_initial_backoff(access.initial_backoff);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .operation_attempt_timeout(Duration::from_secs(60))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(access.region.to_string()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(profile) = access.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = access.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let base = loader.load().await;
    let Some(role) = access.role_arn else {
        return base;
    };
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("costsplit")
        .configure(&base);
    if let Some(external_id) = access.external_id {
        provider = provider.external_id(external_id);
    }
    let provider = provider.build().await;
    base.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build()
}
