//! Input rules, with Nakama's messages (clients show and match them).
//!
//! Usernames and emails are compared the way people read them: a name is
//! stored in NFC (so the precomposed and the decomposed "José" are one
//! spelling) and is unique by its [`username_key`]; characters that can't
//! be seen or that reorder text (format/bidi controls, zero-width and filler
//! characters, unassigned and private-use code points) are refused, so two
//! names that look alike on screen can't both exist and a name can't pose
//! as something it isn't.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{IdentityError, Result};

/// True if `s` has whitespace or control characters.
fn has_space_or_control(s: &str) -> bool {
    s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn identifier(value: &str, what: &str, min: usize, max: usize) -> Result<String> {
    if value.is_empty() {
        return Err(IdentityError::invalid(format!("{what} is required.")));
    }
    if has_space_or_control(value) {
        return Err(IdentityError::invalid(format!(
            "{what} invalid, no spaces or control characters allowed."
        )));
    }
    if value.len() < min || value.len() > max {
        return Err(IdentityError::invalid(format!(
            "{what} invalid, must be {min}-{max} bytes."
        )));
    }
    Ok(value.to_owned())
}

/// A user's free-text field (display name, avatar URL, language tag,
/// location, time zone) within Nakama's limits, so no account carries
/// megabytes in fields every listing returns. Control characters are refused.
pub fn user_text(field: &str, value: &str) -> Result<()> {
    let max = match field {
        "lang_tag" => 18,
        "avatar_url" => 512,
        _ => 255,
    };
    if value.len() > max {
        return Err(IdentityError::invalid(format!(
            "{field} is too long (at most {max} bytes)."
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(IdentityError::invalid(format!(
            "{field} must not contain control characters."
        )));
    }
    Ok(())
}

/// A device id: 10–128 bytes, no spaces or control characters.
pub fn device_id(id: &str) -> Result<String> {
    identifier(id, "Device ID", 10, 128)
}

/// A custom id: 6–128 bytes, no spaces or control characters.
pub fn custom_id(id: &str) -> Result<String> {
    identifier(id, "Custom ID", 6, 128)
}

/// An email address, normalized: 10–255 bytes (Nakama's bounds), one `@`
/// between a non-empty local part (at most 64 bytes) and a domain of
/// dot-separated labels of letters, digits and hyphens, with at least one
/// dot. Quoted local parts and IP-literal domains (RFC 5322 allows them;
/// nobody signs up with them) are refused, and so are invisible and bidi
/// characters. The local part is returned in NFC and lower-cased; the
/// domain in NFKC and lower-cased, as IDNA maps domain names (so a
/// fullwidth `ｅｘａｍｐｌｅ.com` is `example.com`). One address has one
/// spelling wherever it comes in: sign-up, login, link.
pub fn email(email: &str) -> Result<String> {
    if email.is_empty() {
        return Err(IdentityError::invalid("Email address is required."));
    }
    let length = || IdentityError::invalid("Invalid email address, must be 10-255 bytes.");
    // Normalization shrinks text by less than 4x: anything longer can't fit.
    if email.len() > 4 * 255 {
        return Err(length());
    }
    let email: String = email.nfc().collect();
    if has_space_or_control(&email) {
        return Err(IdentityError::invalid(
            "Invalid email address, no spaces or control characters allowed.",
        ));
    }
    let format = || IdentityError::invalid("Invalid email address format.");
    if email.chars().any(is_invisible) {
        return Err(format());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(format)?;
    let local: String = local.to_lowercase().nfc().collect();
    let domain: String = domain.nfkc().collect::<String>().to_lowercase().nfkc().collect();
    let email = format!("{local}@{domain}");
    if email.len() < 10 || email.len() > 255 {
        return Err(length());
    }
    const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok {
        return Err(format());
    }
    Ok(email)
}

/// Checks a metadata object: stored as document fields, its keys (at every
/// depth) may not be empty, start with `$`, or contain `.` or NUL, which the
/// store refuses; the error names the key.
pub fn metadata(value: &serde_json::Value) -> Result<()> {
    fn keys(value: &serde_json::Value, depth: usize) -> Result<()> {
        if depth > 32 {
            return Err(IdentityError::invalid(
                "metadata is nested too deeply (at most 32 levels)",
            ));
        }
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    if key.is_empty() || key.starts_with('$') || key.contains(['.', '\0']) {
                        return Err(IdentityError::invalid(format!(
                            "metadata key {key:?} is not allowed: keys must be non-empty, not start with '$' \
                             and contain no '.' or NUL"
                        )));
                    }
                    keys(inner, depth + 1)?;
                }
                Ok(())
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(|i| keys(i, depth + 1)),
            _ => Ok(()),
        }
    }
    if !value.is_object() {
        return Err(IdentityError::invalid("metadata must be a JSON object"));
    }
    keys(value, 0)
}

/// A password: at least 8 characters.
pub fn password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(IdentityError::invalid("Password is required."));
    }
    if password.chars().count() < 8 {
        return Err(IdentityError::invalid(
            "Password must be at least 8 characters long.",
        ));
    }
    // argon2 accepts any length, but hashing megabytes is a denial of service.
    if password.len() > 1024 {
        return Err(IdentityError::invalid("Password must be at most 1024 bytes."));
    }
    Ok(())
}

/// True for characters that show nothing, or change how the text around
/// them is laid out, while not being whitespace or controls: every format
/// character (`Cf`: bidi embeddings, overrides and isolates U+202A–202E and
/// U+2066–2069, marks U+200E/U+200F, zero-width space, joiners and
/// non-joiners U+200B–200D, word joiner U+2060, BOM U+FEFF, soft hyphen
/// U+00AD, tags U+E0000–E007F...), surrogates, private-use and unassigned
/// code points, the replacement character U+FFFD (what a lossy decoder leaves
/// of invalid input), and these blank or combining-only characters whose
/// category doesn't say so: the combining grapheme joiner U+034F, the Hangul
/// fillers U+115F, U+1160, U+3164, U+FFA0, the Khmer inherent vowels U+17B4
/// and U+17B5, the Mongolian variation selectors U+180B–180F, the braille
/// blank U+2800 and the variation selectors U+FE00–FE0F and U+E0100–E01EF.
fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{FFFD}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// A username, returned in NFC (the form stored and shown): 1–128 bytes, no
/// `@` (a login with one is an email, so a name can't shadow someone's
/// address), no whitespace, control, invisible or bidi characters (see
/// [`is_invisible`]). The rules apply to the NFKC form too, so a fullwidth
/// `＠` or an ideographic space is refused like its plain twin.
pub fn username(name: &str) -> Result<String> {
    let too_long = || IdentityError::invalid("Username invalid, must be 1-128 bytes.");
    // NFC shrinks text by less than 4x: anything longer can't fit, and
    // needn't be normalized first.
    if name.len() > 4 * 128 {
        return Err(too_long());
    }
    let name: String = name.nfc().collect();
    let compatible: String = name.nfkc().collect();
    if has_space_or_control(&name) || has_space_or_control(&compatible) {
        return Err(IdentityError::invalid(
            "Username invalid, no spaces or control characters allowed.",
        ));
    }
    if compatible.contains('@') {
        return Err(IdentityError::invalid(
            "Username invalid, no '@' allowed (a login with '@' is an email address).",
        ));
    }
    if name.chars().any(is_invisible) {
        return Err(IdentityError::invalid(
            "Username invalid, no invisible, formatting or bidirectional control characters allowed.",
        ));
    }
    if name.is_empty() || name.len() > 128 {
        return Err(too_long());
    }
    Ok(name)
}

/// The key a username is unique by and looked up by: NFKC, lower-cased,
/// NFKC again (lower-casing can leave a string unnormalized). So `ROOT`,
/// `root` and the fullwidth `ｒｏｏｔ` are one name, while each account keeps
/// the spelling its owner chose. Simple lower-casing rather than full case
/// folding (which would also equate `ß` and `ss`): it is what the standard
/// library offers, it is stable across versions for assigned characters,
/// and the names it leaves apart don't look alike. A key never contains
/// `@` for a valid name; [`IdentityService`](crate::IdentityService) relies
/// on that to keep the keys of legacy duplicates apart.
pub fn username_key(name: &str) -> String {
    let lower: String = name.nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

/// A generated username: 10 random ASCII letters, as Nakama generates them.
pub fn generate_username() -> Result<String> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let bytes = crate::secret::random_bytes(10)?;
    // 256 % 52 != 0 skews letters slightly; a username needs no uniformity.
    Ok(bytes
        .iter()
        .map(|b| LETTERS[*b as usize % LETTERS.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<String>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn metadata_keys() {
        use serde_json::json;
        assert!(metadata(&json!({"a": {"b": [ {"c": 1} ]}, "x_y-z": null})).is_ok());
        for bad in [
            json!({"": 1}),
            json!({"$set": 1}),
            json!({"a.b": 1}),
            json!({"a\u{0}b": 1}),
            json!({"a": [{"$x": 1}]}),
        ] {
            let err = metadata(&bad).unwrap_err().to_string();
            assert!(err.contains("is not allowed"), "{bad}: {err}");
        }
        assert!(metadata(&json!([1])).is_err());
    }

    #[test]
    fn device_and_custom_ids() {
        assert!(device_id("0123456789").is_ok());
        assert_eq!(msg(device_id("")), "Device ID is required.");
        assert_eq!(
            msg(device_id("012345678")),
            "Device ID invalid, must be 10-128 bytes."
        );
        assert_eq!(
            msg(device_id(&"x".repeat(129))),
            "Device ID invalid, must be 10-128 bytes."
        );
        assert!(device_id(&"x".repeat(128)).is_ok());
        assert_eq!(
            msg(device_id("0123 456789")),
            "Device ID invalid, no spaces or control characters allowed."
        );
        assert_eq!(
            msg(device_id("0123\u{7}456789")),
            "Device ID invalid, no spaces or control characters allowed."
        );
        assert!(custom_id("abcdef").is_ok());
        assert_eq!(msg(custom_id("abcde")), "Custom ID invalid, must be 6-128 bytes.");
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("Ana.Silva@Example.COM").ok().as_deref(),
            Some("ana.silva@example.com")
        );
        assert_eq!(msg(email("")), "Email address is required.");
        assert_eq!(
            msg(email("a@b.co")),
            "Invalid email address, must be 10-255 bytes."
        );
        for bad in [
            "no-at-sign.example.com",
            "ana@localhost",
            "ana@@example.com",
            "ana@exa..mple.com",
            ".ana@example.com",
        ] {
            assert_eq!(msg(email(bad)), "Invalid email address format.", "{bad}");
        }
        assert_eq!(
            msg(email("ana silva@example.com")),
            "Invalid email address, no spaces or control characters allowed."
        );
    }

    #[test]
    fn emails_have_one_spelling() {
        let nfc = email("Jos\u{e9}@Example.com").unwrap_or_default();
        assert_eq!(nfc, "jos\u{e9}@example.com");
        assert_eq!(email("Jose\u{301}@example.com").ok(), Some(nfc.clone()));
        assert_eq!(email("JOSE\u{301}@EXAMPLE.COM").ok(), Some(nfc));
        assert_eq!(
            email("ana@\u{ff45}\u{ff58}ample.com").ok().as_deref(),
            Some("ana@example.com")
        );
        for bad in [
            "ana\u{200b}@example.com",
            "ana@exa\u{202e}mple.com",
            "\u{feff}ana@example.com",
            "ana\u{fffd}@example.com",
            // A fullwidth at sign in the domain is a second `@` once mapped.
            "ana@b\u{ff20}example.com",
        ] {
            assert_eq!(msg(email(bad)), "Invalid email address format.", "{bad:?}");
        }
        assert_eq!(
            msg(email(&"a".repeat(5000))),
            "Invalid email address, must be 10-255 bytes."
        );
    }

    #[test]
    fn usernames_are_normalized_and_visible() {
        assert_eq!(username("Jose\u{301}").ok().as_deref(), Some("Jos\u{e9}"));
        assert_eq!(username("ROOT").ok().as_deref(), Some("ROOT"));
        assert!(username("\u{5f20}\u{4f1f}").is_ok());
        assert!(username("ana-silva_99.x").is_ok());
        for at in ["victim@corp.com", "@ana", "ana\u{ff20}corp.com", "ana\u{fe6b}x"] {
            assert_eq!(
                msg(username(at)),
                "Username invalid, no '@' allowed (a login with '@' is an email address).",
                "{at:?}"
            );
        }
        for invisible in [
            "ad\u{202e}nimda",
            "ad\u{2066}min",
            "ad\u{200e}min",
            "ad\u{200b}min",
            "ad\u{200d}min",
            "ad\u{2060}min",
            "\u{feff}admin",
            "ad\u{ad}min",
            "admin\u{e0041}",
            "\u{3164}",
            "\u{115f}\u{1160}",
            "\u{ffa0}x",
            "\u{2800}",
            "x\u{fe0f}",
            "x\u{34f}",
            "x\u{e000}",
            "x\u{fffd}\u{fffd}",
            "x\u{0378}",
        ] {
            assert_eq!(
                msg(username(invisible)),
                "Username invalid, no invisible, formatting or bidirectional control characters allowed.",
                "{invisible:?}"
            );
        }
        for spaced in [
            "ana silva",
            "ana\u{3000}silva",
            "ana\u{a0}",
            "ana\u{2028}",
            "a\u{85}",
            "a\u{7f}",
        ] {
            assert_eq!(
                msg(username(spaced)),
                "Username invalid, no spaces or control characters allowed.",
                "{spaced:?}"
            );
        }
        assert_eq!(msg(username("")), "Username invalid, must be 1-128 bytes.");
        assert_eq!(
            msg(username(&"x".repeat(100_000))),
            "Username invalid, must be 1-128 bytes."
        );
        // 64 decomposed é (192 bytes) are 64 precomposed ones (128 bytes).
        assert_eq!(username(&"e\u{301}".repeat(64)).ok(), Some("\u{e9}".repeat(64)));
    }

    #[test]
    fn username_keys() {
        let key = |n: &str| username(n).map(|n| username_key(&n)).unwrap_or_default();
        assert_eq!(key("ROOT"), "root");
        assert_eq!(key("Root"), key("root"));
        assert_eq!(key("\u{ff32}\u{ff4f}\u{ff4f}\u{ff54}"), "root");
        assert_eq!(key("JOSE\u{301}"), key("jos\u{e9}"));
        assert_eq!(key("\u{fb01}sh"), "fish");
        assert_ne!(key("ana"), key("anna"));
        for name in ["ROOT", "Jos\u{e9}", "\u{130}stanbul", "\u{3a3}\u{39f}\u{3a3}"] {
            let k = key(name);
            assert_eq!(username_key(&k), k, "a key is its own key: {name}");
            assert!(!k.contains('@'));
        }
    }

    #[test]
    fn passwords_and_usernames() {
        assert!(password("12345678").is_ok());
        assert_eq!(
            password("1234567").err().map(|e| e.to_string()).as_deref(),
            Some("Password must be at least 8 characters long.")
        );
        assert!(username("ana_silva").is_ok());
        assert!(username(&"é".repeat(64)).is_ok());
        assert_eq!(
            msg(username(&"é".repeat(65))),
            "Username invalid, must be 1-128 bytes."
        );
        assert_eq!(
            msg(username("ana silva")),
            "Username invalid, no spaces or control characters allowed."
        );
        let generated = generate_username().unwrap_or_default();
        assert_eq!(generated.len(), 10);
        assert!(generated.chars().all(|c| c.is_ascii_alphabetic()));
    }
}
