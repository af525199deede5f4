//! Display-name sanitizing and the text checks behind the schema's rules: control,
//! whitespace and bidi-override characters, checked on every record stored and
//! every record decoded (so the common all-ASCII case is a vectorized byte scan).

use super::MAX_DISPLAY_NAME_CHARS;

/// Clean a display name: whitespace becomes a space, control and bidi-override
/// characters are removed, runs of spaces collapse, the ends are trimmed, and the
/// result is cut at 64 characters.
///
/// ```
/// use peerbook::schema::sanitize_display_name;
/// assert_eq!(sanitize_display_name("  Al\u{202E}ice\t\n Smith\u{0007} "), "Alice Smith");
/// assert_eq!(sanitize_display_name(&"x".repeat(100)).len(), 64);
/// ```
pub fn sanitize_display_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_DISPLAY_NAME_CHARS * 4));
    let mut chars = 0;
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = chars > 0;
            continue;
        }
        if c.is_control() || is_bidi_control(c) {
            continue;
        }
        if pending_space {
            if chars + 1 >= MAX_DISPLAY_NAME_CHARS {
                break;
            }
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
        if chars == MAX_DISPLAY_NAME_CHARS {
            break;
        }
    }
    out
}

/// Unicode bidirectional formatting characters (embeddings, overrides, isolates, marks).
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// True when `s` has a char that `wide` refuses, or an ASCII control byte (also a
/// space when `space`). Every record read re-validates its candidates, urls and
/// names, so the common all-ASCII case is one branch-free pass over the bytes (it
/// vectorizes); only text with non-ASCII bytes is decoded into chars for `wide`.
#[inline]
fn refuses(s: &str, space: bool, wide: impl Fn(char) -> bool) -> bool {
    let limit = if space { 0x21 } else { 0x20 };
    let (bad, high) = scan(s.as_bytes(), limit);
    // An ASCII control or whitespace char is a refused byte, so `wide` only has
    // the non-ASCII chars left to judge.
    bad || (high && s.chars().any(wide))
}

/// True when every byte is printable ASCII other than the space (0x21..=0x7e), the
/// peer id rule, in the same passes as the text checks.
pub(crate) fn is_visible_ascii(bytes: &[u8]) -> bool {
    !any_outside(bytes, 0x21)
}

/// Whether `bytes` has a byte below `limit` or DEL, and whether it has a
/// non-ASCII byte (0x80 and up): one pass that finds neither in the common case
/// (text of printable ASCII), the two passes that tell them apart only after it
/// found one.
#[inline(always)]
fn scan(bytes: &[u8], limit: u8) -> (bool, bool) {
    if !any_outside(bytes, limit) {
        return (false, false);
    }
    bad_and_high(bytes, limit)
}

/// A byte outside `limit..=0x7e` (below `limit`, DEL, or >= 0x80) in `bytes`.
#[inline(always)]
fn any_outside(bytes: &[u8], limit: u8) -> bool {
    blockwise(bytes, |blocks, last| {
        outside_byte(blocks, limit) || outside_byte(last, limit)
    })
}

/// `check` on `bytes` as two slices of whole 32-byte blocks (a length the vector
/// loop needs no tail for): the whole blocks, then the last 32 bytes once more
/// instead of a byte-by-byte tail; a short string padded to 32 bytes with a byte
/// no rule refuses, then nothing.
#[inline(always)]
fn blockwise<T>(bytes: &[u8], check: impl FnOnce(&[u8], &[u8]) -> T) -> T {
    match bytes.last_chunk::<32>() {
        Some(last) => {
            let (blocks, _) = bytes.as_chunks::<32>();
            check(blocks.as_flattened(), last)
        }
        None => {
            let mut padded = [b'a'; 32];
            padded[..bytes.len()].copy_from_slice(bytes);
            check(&padded, &[])
        }
    }
}

/// A byte outside `limit..=0x7e` in `bytes` (whole 32-byte blocks): one unsigned
/// compare a byte, branch-free, vectorized.
#[inline(always)]
fn outside_byte(bytes: &[u8], limit: u8) -> bool {
    let mut out = 0u8;
    for &b in bytes {
        out |= u8::from(b.wrapping_sub(limit) > 0x7e - limit);
    }
    out != 0
}

/// [`scan`] in two passes, one per answer.
#[cold]
fn bad_and_high(bytes: &[u8], limit: u8) -> (bool, bool) {
    blockwise(bytes, |blocks, last| {
        (
            refused_byte(blocks, limit) || refused_byte(last, limit),
            high_byte(blocks) || high_byte(last),
        )
    })
}

/// A byte below `limit` or DEL in `bytes` (a length of whole 32-byte blocks), in
/// one branch-free pass that vectorizes.
#[inline(always)]
fn refused_byte(bytes: &[u8], limit: u8) -> bool {
    let mut bad = 0u8;
    for &b in bytes {
        bad |= u8::from(b < limit) | u8::from(b == 0x7f);
    }
    bad != 0
}

/// A byte >= 0x80 in `bytes` (whole 32-byte blocks): the OR of 8-byte words, which
/// reduces in two steps where the OR of bytes took a dozen shifts.
#[inline(always)]
fn high_byte(bytes: &[u8]) -> bool {
    let (words, _) = bytes.as_chunks::<8>();
    let high = words.iter().fold(0, |acc, w| acc | u64::from_ne_bytes(*w));
    high & 0x8080_8080_8080_8080 != 0
}

/// A control or bidi-override char.
pub(crate) fn has_control(s: &str) -> bool {
    refuses(s, false, |c| c.is_control() || is_bidi_control(c))
}

/// A control, whitespace or bidi-override char.
pub(crate) fn has_control_or_space(s: &str) -> bool {
    refuses(s, true, |c| {
        c.is_control() || c.is_whitespace() || is_bidi_control(c)
    })
}

/// A control char (bidi overrides allowed).
pub(crate) fn has_plain_control(s: &str) -> bool {
    refuses(s, false, char::is_control)
}

/// True when `name` is its own sanitized form (what [`sanitize_display_name`]
/// returns for it), checked without allocating.
pub fn is_sanitized_display_name(name: &str) -> bool {
    // ASCII (almost every name): every ASCII whitespace but the space is a control
    // byte, so the rules are byte rules, checked in one pass without decoding chars.
    let bytes = name.as_bytes();
    if bytes.len() <= MAX_DISPLAY_NAME_CHARS {
        let (mut ok, mut high, mut previous_space) = (true, false, true);
        for &b in bytes {
            high |= b >= 0x80;
            ok &= b >= 0x20 && b != 0x7f && !(b == b' ' && previous_space);
            previous_space = b == b' ';
        }
        if !high {
            // no trailing space (an empty name has none)
            return ok && (!previous_space || bytes.is_empty());
        }
    }
    let mut chars = 0;
    let mut previous_space = true; // no leading space
    for c in name.chars() {
        chars += 1;
        if chars > MAX_DISPLAY_NAME_CHARS || c.is_control() || is_bidi_control(c) {
            return false;
        }
        if c.is_whitespace() {
            if c != ' ' || previous_space {
                return false;
            }
            previous_space = true;
        } else {
            previous_space = false;
        }
    }
    !(chars > 0 && previous_space) // no trailing space
}
