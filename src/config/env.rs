//! The environment, read as Better Auth reads it (spec §2.1, §8): the secret and its rotation
//! list, and whether cookies are secure.

use crate::error::ConfigError;

/// The base URL variables Better Auth reads, first set wins (`getBaseURL`).
pub(crate) const BASE_URL_VARS: [&str; 6] = [
    "BETTER_AUTH_URL",
    "NEXT_PUBLIC_BETTER_AUTH_URL",
    "PUBLIC_BETTER_AUTH_URL",
    "NUXT_PUBLIC_BETTER_AUTH_URL",
    "NUXT_PUBLIC_AUTH_URL",
    "BASE_URL",
];

/// The secrets in the environment: the current one first, then previous ones.
pub(crate) fn secrets() -> Result<Vec<String>, ConfigError> {
    if let Some(list) = var("BETTER_AUTH_SECRETS")? {
        let secrets = parse_secrets(&list)?;
        if !secrets.is_empty() {
            return Ok(secrets);
        }
    }
    for name in ["BETTER_AUTH_SECRET", "AUTH_SECRET"] {
        if let Some(v) = var(name)? {
            return Ok(vec![v]);
        }
    }
    Err(ConfigError::MissingSecret)
}

/// Whether the environment makes cookies secure: the first base URL set decides (`https://`);
/// without one, `NODE_ENV=production`. `None` when the environment says nothing.
pub(crate) fn secure() -> Option<bool> {
    if let Ok(Some(url)) = base_url() {
        return Some(url.starts_with("https://"));
    }
    matches!(var("NODE_ENV"), Ok(Some(v)) if v == "production").then_some(true)
}

/// The first base URL set, as Better Auth's `getBaseURL` reads the environment (which skips
/// `BASE_URL=/`, a bundler's public path).
pub(crate) fn base_url() -> Result<Option<String>, ConfigError> {
    for name in BASE_URL_VARS {
        if let Some(url) = var(name)? {
            if name == "BASE_URL" && url == "/" {
                continue;
            }
            return Ok(Some(url));
        }
    }
    Ok(None)
}

/// Reads an environment variable; unset and empty are both `None`.
pub(crate) fn var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { var: name }),
    }
}

/// Parses `BETTER_AUTH_SECRETS`: comma-separated `version:value`, non-negative integer versions,
/// no duplicates; returns the values, current first.
pub(crate) fn parse_secrets(list: &str) -> Result<Vec<String>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        option: "BETTER_AUTH_SECRETS",
        reason,
    };
    let mut versions = Vec::new();
    let mut values = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (version, value) = entry.split_once(':').ok_or_else(|| {
            invalid(
                "expected comma-separated `version:value` entries, e.g. `2:new-secret,1:old-secret`"
                    .to_owned(),
            )
        })?;
        let version: u64 = version
            .trim()
            .parse()
            .map_err(|_| invalid(format!("version {version:?} is not a non-negative integer")))?;
        if versions.contains(&version) {
            return Err(invalid(format!("version {version} appears twice")));
        }
        // Better Auth trims the value too: `2: new-secret` signs with `new-secret`.
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid(format!(
                "version {version} has an empty secret value"
            )));
        }
        versions.push(version);
        values.push(value.to_owned());
    }
    if values.is_empty() {
        return Err(invalid("no `version:value` entry".to_owned()));
    }
    Ok(values)
}
