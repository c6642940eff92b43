//! Tokenization for full-text search, shared so that the server's and the
//! client's SQLite FTS5 indexes and queries agree.
//!
//! FTS5's `unicode61` tokenizer splits on spaces and punctuation, so a run of
//! Chinese characters, which has no spaces, would become one token and a search
//! for a word inside it would find nothing. As in Lucene's CJK bigram analyzer,
//! [`index_text`] rewrites each run of CJK characters as overlapping bigrams
//! followed by its last character alone, so every character starts a token:
//! `会议室` becomes `会议 议室 室`. [`match_query`] turns a typed query into an
//! FTS5 expression: a CJK word becomes a phrase of its bigrams, and other words
//! become prefix terms. Store the output of [`index_text`] in a column indexed
//! with `tokenize = 'unicode61 remove_diacritics 2'`.

/// Returns whether `c` belongs to a script written without spaces between words:
/// Han, Hiragana, Katakana, Hangul, and their compatibility and extension blocks.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Unified Ideographs Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul Syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x3134F  // CJK Unified Ideographs Extensions B to G
    )
}

/// Splits `text` into runs that are either all CJK characters or all word
/// characters of other scripts. Everything else separates runs.
fn runs(text: &str) -> Vec<(bool, String)> {
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in text.chars() {
        let cjk = is_cjk(c);
        if !cjk && !c.is_alphanumeric() {
            runs.push((false, String::new()));
            continue;
        }
        match runs.last_mut() {
            Some((last_cjk, run)) if *last_cjk == cjk => run.push(c),
            _ => runs.push((cjk, c.to_string())),
        }
    }
    runs.retain(|(_, run)| !run.is_empty());
    runs
}

/// Returns the overlapping bigrams of a CJK run, without the trailing unigram.
fn bigrams(run: &str) -> Vec<String> {
    let chars: Vec<char> = run.chars().collect();
    chars.windows(2).map(|pair| pair.iter().collect()).collect()
}

/// Rewrites `text` for an FTS5 column tokenized with `unicode61`.
pub fn index_text(text: &str) -> String {
    let mut tokens: Vec<String> = Vec::new();
    for (cjk, run) in runs(text) {
        if cjk {
            tokens.extend(bigrams(&run));
            if let Some(last) = run.chars().last() {
                tokens.push(last.to_string());
            }
        } else {
            tokens.push(run);
        }
    }
    tokens.join(" ")
}

/// Quotes one FTS5 string, doubling any embedded double quote.
fn quote(token: &str) -> String {
    format!("\"{}\"", token.replace('"', "\"\""))
}

/// Builds an FTS5 `MATCH` expression that finds `query` in text indexed with
/// [`index_text`]: every word must occur. Returns `None` when `query` has no
/// word characters.
pub fn match_query(query: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for (cjk, run) in runs(query) {
        if !cjk {
            terms.push(format!("{}*", quote(&run)));
            continue;
        }
        if run.chars().count() == 1 {
            // One character: any token that starts with it.
            terms.push(format!("{}*", quote(&run)));
        } else {
            terms.push(quote(&bigrams(&run).join(" ")));
        }
    }
    if terms.is_empty() {
        None
    } else {
        Some(terms.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_run_becomes_bigrams() {
        assert_eq!(index_text("会议室"), "会议 议室 室");
    }

    #[test]
    fn mixed_text_keeps_latin_words() {
        assert_eq!(
            index_text("明天3点 meeting, 在会议室!"),
            "明天 天 3 点 meeting 在会 会议 议室 室"
        );
    }

    #[test]
    fn emoji_and_punctuation_separate_words() {
        assert_eq!(index_text("ok👍done"), "ok done");
    }

    #[test]
    fn query_for_chinese_word_is_phrase() {
        assert_eq!(match_query("会议室").as_deref(), Some("\"会议 议室\""));
        assert_eq!(match_query("会议").as_deref(), Some("\"会议\""));
    }

    #[test]
    fn query_for_latin_words_uses_prefixes() {
        assert_eq!(
            match_query("Meet \"room").as_deref(),
            Some("\"Meet\"* AND \"room\"*")
        );
    }

    #[test]
    fn query_without_words_is_none() {
        assert_eq!(match_query(" !? 👍 "), None);
    }
}
