//! Where the signing secret comes from.

use std::path::PathBuf;

use clap::Args;
use plugipay_webhook::Verifier;

use crate::Failure;

/// Secret options, shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// Read the secret(s) from this file (commas or newlines between several).
    #[arg(long, global = true, value_name = "FILE")]
    secret_file: Option<PathBuf>,

    /// The secret itself. Visible to other users in the process list: prefer
    /// PLUGIPAY_WEBHOOK_SECRET or --secret-file.
    #[arg(long, global = true, value_name = "SECRET", hide_env_values = true)]
    secret: Option<String>,
}

impl SecretArgs {
    /// The configured secrets, in keyring order: --secret, else
    /// --secret-file, else PLUGIPAY_WEBHOOK_SECRET.
    pub(crate) fn secrets(&self) -> Result<Vec<String>, Failure> {
        let (raw, source) = if let Some(s) = &self.secret {
            (s.clone(), "--secret".to_owned())
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

    /// A verifier over the configured keyring.
    pub(crate) fn verifier(&self) -> Result<Verifier, Failure> {
        Ok(Verifier::from_secrets(self.secrets()?))
    }
}
