//! The header's bounds (`docs/behaviour.md`): what the parser enforces and
//! what the errors quote, below both.

/// Longest accepted header value, in bytes (`docs/behaviour.md`, header rule 3).
pub const MAX_HEADER_LEN: usize = 8192;

/// Most `v1=` items accepted in one header (`docs/behaviour.md`, header rule 7).
pub const MAX_SIGNATURES: usize = 32;
