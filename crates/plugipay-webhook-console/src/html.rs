//! Text for the pages: a value cut to a length, a duration in words. The
//! markup itself is in `components` (maud escapes what it is given).

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// A duration in ms as `850 ms`, `42 s`, `3 min`, `5 h`, `2 d`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_cuts() {
        assert_eq!(age(850), "850 ms");
        assert_eq!(age(42_000), "42 s");
        assert_eq!(age(3 * 60_000), "3 min");
        assert_eq!(age(-5), "0 ms");
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("ab", 3), "ab");
        assert_eq!(cut("✓✓✓✓", 2), "✓✓…");
    }
}
