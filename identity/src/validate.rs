//! Input rules, with Nakama's messages (clients show and match them).

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

/// A device id: 10–128 bytes, no spaces or control characters.
pub fn device_id(id: &str) -> Result<String> {
    identifier(id, "Device ID", 10, 128)
}

/// A custom id: 6–128 bytes, no spaces or control characters.
pub fn custom_id(id: &str) -> Result<String> {
    identifier(id, "Custom ID", 6, 128)
}

/// An email address, lower-cased: 10–255 bytes (Nakama's bounds), one `@`
/// between a non-empty local part (at most 64 bytes) and a domain of
/// dot-separated labels of letters, digits and hyphens, with at least one
/// dot. Quoted local parts and IP-literal domains (RFC 5322 allows them;
/// nobody signs up with them) are refused.
pub fn email(email: &str) -> Result<String> {
    if email.is_empty() {
        return Err(IdentityError::invalid("Email address is required."));
    }
    if has_space_or_control(email) {
        return Err(IdentityError::invalid(
            "Invalid email address, no spaces or control characters allowed.",
        ));
    }
    if email.len() < 10 || email.len() > 255 {
        return Err(IdentityError::invalid(
            "Invalid email address, must be 10-255 bytes.",
        ));
    }
    let format = || IdentityError::invalid("Invalid email address format.");
    let (local, domain) = email.rsplit_once('@').ok_or_else(format)?;
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
    Ok(email.to_lowercase())
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

/// A username: 1–128 bytes, no spaces or control characters.
pub fn username(name: &str) -> Result<String> {
    if has_space_or_control(name) {
        return Err(IdentityError::invalid(
            "Username invalid, no spaces or control characters allowed.",
        ));
    }
    if name.is_empty() || name.len() > 128 {
        return Err(IdentityError::invalid("Username invalid, must be 1-128 bytes."));
    }
    Ok(name.to_owned())
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
