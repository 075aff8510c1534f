//! Where the signing secret comes from.

use std::path::PathBuf;

use clap::Args;

use crate::Failure;

/// Secret options, shared by every subcommand. Its `Debug` never shows the
/// secret.
#[derive(Args)]
pub(crate) struct SecretArgs {
    /// Read the secret(s) from this file (commas or newlines between several).
    #[arg(long, global = true, value_name = "FILE")]
    secret_file: Option<PathBuf>,

    /// The secret itself (repeatable: a keyring; `verify --explain` reports
    /// which one matched). Visible to other users in the process list:
    /// prefer PLUGIPAY_WEBHOOK_SECRET or --secret-file.
    #[arg(long, global = true, value_name = "SECRET", hide_env_values = true)]
    secret: Vec<String>,
}

impl std::fmt::Debug for SecretArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretArgs")
            .field("secret_file", &self.secret_file)
            .field("secret", &format_args!("[REDACTED; {}]", self.secret.len()))
            .finish()
    }
}

impl SecretArgs {
    /// The configured secrets, in keyring order: --secret, else
    /// --secret-file, else PLUGIPAY_WEBHOOK_SECRET.
    pub(crate) fn secrets(&self) -> Result<Vec<String>, Failure> {
        let (raw, source) = if !self.secret.is_empty() {
            (self.secret.join(","), "--secret".to_owned())
        } else if let Some(path) = &self.secret_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::config(format!("cannot read secret file {}: {e}", path.display()))
            })?;
            (text, format!("secret file {}", path.display()))
        } else {
            match std::env::var(plugipay_webhook::SECRET_ENV_VAR) {
                Ok(v) => (v, plugipay_webhook::SECRET_ENV_VAR.to_owned()),
                Err(_) => {
                    return Err(Failure::config(format!(
                        "no signing secret: set {} (or pass --secret-file FILE)",
                        plugipay_webhook::SECRET_ENV_VAR
                    )))
                }
            }
        };
        let secrets: Vec<String> = raw
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if secrets.is_empty() {
            return Err(Failure::config(format!("{source} holds no secret")));
        }
        Ok(secrets)
    }
}

/// The variable holding per-tenant secrets (`acme=whsec_a,whsec_a_old;globex=whsec_b`).
pub(crate) const TENANT_SECRETS_ENV_VAR: &str = "PLUGIPAY_TENANT_SECRETS";

impl SecretArgs {
    /// The secrets of `tenant` (from PLUGIPAY_TENANT_SECRETS), or the
    /// configured ones when there is no tenant.
    pub(crate) fn secrets_for(&self, tenant: Option<&str>) -> Result<Vec<String>, Failure> {
        let Some(tenant) = tenant else {
            return self.secrets();
        };
        let spec = std::env::var(TENANT_SECRETS_ENV_VAR).map_err(|_| {
            Failure::config(format!(
                "the event belongs to tenant {tenant:?}: set {TENANT_SECRETS_ENV_VAR} (tenant=secret,…;…)"
            ))
        })?;
        for item in spec.split(';').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((name, secrets)) = item.split_once('=') else {
                return Err(Failure::config(format!(
                    "{TENANT_SECRETS_ENV_VAR}: every item must be `tenant=secret[,secret…]`"
                )));
            };
            if name.trim() == tenant {
                let secrets: Vec<String> = secrets
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                if secrets.is_empty() {
                    return Err(Failure::config(format!(
                        "{TENANT_SECRETS_ENV_VAR}: tenant {tenant:?} has no secret"
                    )));
                }
                return Ok(secrets);
            }
        }
        Err(Failure::config(format!(
            "{TENANT_SECRETS_ENV_VAR} has no secret for tenant {tenant:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn debug_of_the_parsed_arguments_never_shows_the_secret() {
        let cli = crate::Cli::try_parse_from([
            "plugipay-webhook",
            "--secret",
            "whsec_do_not_print",
            "sign",
            "-t",
            "5",
        ])
        .expect("parses");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("whsec_do_not_print"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
