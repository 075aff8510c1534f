//! `sign`: the header value for a body.

use plugipay_webhook::testing;

use crate::secret::SecretArgs;
use crate::{read_input, Failure, SignArgs};

pub(crate) fn run(secret: &SecretArgs, args: &SignArgs) -> Result<u8, Failure> {
    let secrets = secret.secrets()?;
    let body = read_input(&args.file)?;
    let t = args.timestamp.map_or_else(crate::time::now, |t| {
        i64::try_from(t).expect("the parser caps it at i64::MAX")
    });
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    // Several secrets: one v1 each, as Plugipay signs during a rotation.
    outln!("{}", testing::sign_header_multi(&refs, t, &body));
    Ok(0)
}
