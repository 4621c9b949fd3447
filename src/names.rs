//! Display-name rules: what a name may contain so that nobody can impersonate another in a list.

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Why a display name was refused; the text is shown to the person who typed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing left after trimming.
    #[error("Display names cannot be empty.")]
    Empty,
    /// Over [`MAX_NAME_CHARS`].
    #[error("Display names are at most 64 characters.")]
    TooLong,
    /// A control character (newline, tab, escape…).
    #[error("Display names cannot contain control characters.")]
    Control,
    /// A character that reorders text (right-to-left override and its kin): it can make one
    /// name look like another.
    #[error("Display names cannot contain text-direction control characters.")]
    Bidi,
    /// A character that shows nothing (zero-width space, joiner, word joiner…): two names
    /// that look the same could differ.
    #[error("Display names cannot contain invisible (zero-width) characters.")]
    Invisible,
}

/// Characters that change the direction text is shown in (Unicode bidi controls).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that take no space on screen, and line/paragraph separators.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'..='\u{2064}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// A display name as it will be shown: trimmed and checked.
pub fn check_display_name(name: &str) -> Result<String, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    for c in name.chars() {
        if is_bidi_control(c) {
            return Err(NameError::Bidi);
        }
        if is_invisible(c) {
            return Err(NameError::Invisible);
        }
        if c.is_control() {
            return Err(NameError::Control);
        }
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_in_any_script() {
        assert_eq!(check_display_name("  Ana "), Ok("Ana".into()));
        assert_eq!(check_display_name("Zoë Ünal"), Ok("Zoë Ünal".into()));
        assert_eq!(check_display_name("محمد"), Ok("محمد".into()));
        assert_eq!(check_display_name("李小龍"), Ok("李小龍".into()));
        assert_eq!(check_display_name(&"é".repeat(64)), Ok("é".repeat(64)));
    }

    #[test]
    fn impersonation_tricks_are_refused() {
        assert_eq!(check_display_name("Ana\u{202E}nimda"), Err(NameError::Bidi));
        assert_eq!(check_display_name("\u{2067}Host"), Err(NameError::Bidi));
        assert_eq!(
            check_display_name("Ho\u{200B}st"),
            Err(NameError::Invisible)
        );
        assert_eq!(
            check_display_name("Host\u{FEFF}"),
            Err(NameError::Invisible)
        );
        assert_eq!(check_display_name("a\u{7}b"), Err(NameError::Control));
        assert_eq!(check_display_name("   "), Err(NameError::Empty));
        assert_eq!(check_display_name(&"x".repeat(65)), Err(NameError::TooLong));
    }
}
