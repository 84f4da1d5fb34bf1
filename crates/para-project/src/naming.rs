//! Naming rules that real projects rely on, in one place.

/// The slug of a custom integration: its display name lower-cased with everything but `[a-z0-9]`
/// removed ("GitHub Enterprise" → `githubenterprise`). The folder is `custom.<slug>`.
pub fn custom_slug(display_name: &str) -> String {
    display_name
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect()
}

/// The folder name prefix of custom integrations.
pub const CUSTOM_PREFIX: &str = "custom.";

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidates closest to `word` (case-insensitive), best first, at most `limit` of them, and
/// only those close enough to be a plausible typo.
pub fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<&'a str> {
    let lower = word.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(lower.len()) / 3).max(1))
        .collect();
    scored.sort();
    scored.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_only_lowercase_letters_and_digits() {
        assert_eq!(custom_slug("GitHub Enterprise"), "githubenterprise");
        assert_eq!(custom_slug("ACME CRM"), "acmecrm");
        assert_eq!(custom_slug("Café 2.0!"), "caf20");
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["salesforce", "slack", "hubspot"];
        assert_eq!(closest("salesfrce", keys, 3), vec!["salesforce"]);
        assert!(closest("zzzzzz", keys, 3).is_empty());
    }
}
